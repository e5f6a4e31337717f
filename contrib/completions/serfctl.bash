# bash completion for serfctl(1)                              -*- shell-script -*-

_serfctl_members() {
    serfctl "${_serfctl_global[@]}" -format json members 2>/dev/null |
        sed -n 's/^ *"name": "\(.*\)",$/\1/p'
}

_serfctl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    fi

    local commands="members top join leave event query tags force-leave keys keygen rtt monitor info reachability reload version help"
    local -a _serfctl_global=()
    local i cmd=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            -socket|-format|-rpc-addr|-rpc-auth)
                _serfctl_global+=("${words[i]}" "${words[i+1]}")
                ((i++)) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done

    case $prev in
        -socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        -log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
        -status) COMPREPLY=($(compgen -W "alive leaving left failed" -- "$cur")); return ;;
        -node|-name) COMPREPLY=($(compgen -W "$(_serfctl_members)" -- "$cur")); return ;;
        -timeout|-interval|-relay-factor|-tag|-set|-delete|-rpc-addr|-rpc-auth|-install|-use|-remove) return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-socket -rpc-addr -rpc-auth -format -help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local flags=""
    case $cmd in
        members) flags="-detailed -status -name -tag -watch -interval" ;;
        top) flags="-detailed -status -name -tag -interval" ;;
        join) flags="-replay" ;;
        event) flags="-coalesce -wait" ;;
        query) flags="-node -tag -timeout -no-ack -relay-factor" ;;
        tags) flags="-set -delete" ;;
        force-leave) flags="-prune"
            [[ $cur != -* ]] && { COMPREPLY=($(compgen -W "$(_serfctl_members)" -- "$cur")); return; } ;;
        rtt) [[ $cur != -* ]] && { COMPREPLY=($(compgen -W "$(_serfctl_members)" -- "$cur")); return; } ;;
        keys) flags="-install -use -remove -list"
            [[ $prev == keys && $cur != -* ]] && { COMPREPLY=($(compgen -W "install use remove list" -- "$cur")); return; } ;;
        monitor) flags="-log-level" ;;
        reachability) flags="-verbose -timeout" ;;
    esac
    COMPREPLY=($(compgen -W "$flags -format -rpc-addr -rpc-auth" -- "$cur"))
} &&
    complete -F _serfctl serfctl
