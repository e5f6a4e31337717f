# fish completion for serfctl(1)

set -l commands members top join leave event query tags force-leave keys keygen rtt monitor info reachability reload version help

function __serfctl_members
    serfctl -format json members 2>/dev/null | string match -rg '^\s*"name": "(.*)",$'
end

complete -c serfctl -f
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -o socket -r -F -d 'control socket'
complete -c serfctl -o format -x -a 'text json' -d 'output format'
complete -c serfctl -o rpc-addr -x -d "talk Serf's RPC to host:port"
complete -c serfctl -o rpc-auth -x -d 'Serf RPC token'

complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a members -d "list the cluster's members"
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a top -d 'follow the members and the recent events'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a join -d 'join a cluster through one of its members'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a leave -d 'leave gracefully and stop serfd'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a event -d 'broadcast a user event'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a query -d 'ask the cluster'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a tags -d "change this node's tags"
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a force-leave -d 'make a failed node leave'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a keys -d 'rotate the encryption keys'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a keygen -d 'print a new random key'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a rtt -d 'estimated round trip time'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a monitor -d "stream serfd's log records"
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a info -d 'counts, stats, versions'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a reachability -d 'ping every member'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a reload -d 're-read the configuration'
complete -c serfctl -n "not __fish_seen_subcommand_from $commands" -a version -d "print serfctl's version"

complete -c serfctl -n '__fish_seen_subcommand_from members top' -o detailed -d 'protocol versions too'
complete -c serfctl -n '__fish_seen_subcommand_from members top' -o status -x -a 'alive leaving left failed' -d 'status regexp'
complete -c serfctl -n '__fish_seen_subcommand_from members top' -o name -x -a '(__serfctl_members)' -d 'name regexp'
complete -c serfctl -n '__fish_seen_subcommand_from members top' -o tag -x -d 'KEY=REGEXP'
complete -c serfctl -n '__fish_seen_subcommand_from members' -o watch -d 'follow the members and the recent events'
complete -c serfctl -n '__fish_seen_subcommand_from members top' -o interval -x -d 'with -watch, fetch at least this often'
complete -c serfctl -n '__fish_seen_subcommand_from join' -o replay -d 'replay past user events'
complete -c serfctl -n '__fish_seen_subcommand_from event' -o coalesce -d 'let receivers coalesce'
complete -c serfctl -n '__fish_seen_subcommand_from event' -o wait -x -d 'retry a busy refusal this long'
complete -c serfctl -n '__fish_seen_subcommand_from query' -o node -x -a '(__serfctl_members)' -d 'only this node answers'
complete -c serfctl -n '__fish_seen_subcommand_from query' -o tag -x -d 'KEY=REGEXP'
complete -c serfctl -n '__fish_seen_subcommand_from query reachability' -o timeout -x -d 'duration'
complete -c serfctl -n '__fish_seen_subcommand_from query' -o no-ack -d 'do not ask for acks'
complete -c serfctl -n '__fish_seen_subcommand_from query' -o relay-factor -x -a '0 1 2 3 4 5' -d 'relaying nodes'
complete -c serfctl -n '__fish_seen_subcommand_from tags' -o set -x -d 'KEY=VALUE'
complete -c serfctl -n '__fish_seen_subcommand_from tags' -o delete -x -d 'KEY'
complete -c serfctl -n '__fish_seen_subcommand_from force-leave' -o prune -d 'forget the node at once'
complete -c serfctl -n '__fish_seen_subcommand_from force-leave rtt' -a '(__serfctl_members)'
complete -c serfctl -n '__fish_seen_subcommand_from keys' -o install -x -d 'install KEY'
complete -c serfctl -n '__fish_seen_subcommand_from keys' -o use -x -d 'make KEY primary'
complete -c serfctl -n '__fish_seen_subcommand_from keys' -o remove -x -d 'remove KEY'
complete -c serfctl -n '__fish_seen_subcommand_from keys' -o list -d 'list the keys'
complete -c serfctl -n '__fish_seen_subcommand_from reachability' -o verbose -d 'each ack and the times'
complete -c serfctl -n '__fish_seen_subcommand_from keys; and not __fish_seen_subcommand_from install use remove list' -a 'install use remove list'
complete -c serfctl -n '__fish_seen_subcommand_from monitor' -o log-level -x -a 'debug info warn error' -d 'lowest level'
