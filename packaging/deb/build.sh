#!/usr/bin/env bash
# Turns a staged install tree into a Debian package with plain dpkg-deb.
#
#   packaging/deb/build.sh STAGEDIR VERSION OUTPUT.deb [ARCH]
#
# STAGEDIR is what `make install DESTDIR=STAGEDIR PREFIX=/usr` produced
# (`make deb` does all of it). ARCH is the Debian architecture the binaries
# were built for, by default this host's (dpkg --print-architecture); for
# another one (arm64) the GNU cross binutils strip and read them. This script adds /usr/share/doc/serfd, the
# DEBIAN control directory (control, conffiles, md5sums, maintainer
# scripts), normalises permissions and builds OUTPUT.deb owned by root.
set -euo pipefail

if [ $# -lt 3 ] || [ $# -gt 4 ]; then
	echo "usage: $0 STAGEDIR VERSION OUTPUT.deb [ARCH]" >&2
	exit 2
fi
stage=$1
version=$2
out=$3
here=$(cd "$(dirname "$0")" && pwd)
pkg=serfd
maint='serfd maintainers <serfd@users.noreply.github.com>'

umask 022
export LC_ALL=C

if [ ! -x "$stage/usr/bin/serfd" ] || [ ! -x "$stage/usr/bin/serfctl" ]; then
	echo "$0: $stage/usr/bin has no serfd and serfctl; run make deb" >&2
	exit 1
fi
# dpkg's rules: digits first, then alphanumerics and + . ~ - :
if ! [[ $version =~ ^[0-9][A-Za-z0-9.+~:-]*$ ]]; then
	echo "$0: '$version' is not a Debian version" >&2
	exit 1
fi
stage=$(cd "$stage" && pwd)
host_arch=$(dpkg --print-architecture)
arch=${4:-$host_arch}
# The binutils for the binaries: the host's, or the cross ones prefixed
# with the architecture's GNU type (aarch64-linux-gnu-strip), and then the
# cross libc's directory for dpkg-shlibdeps.
tool=
libdir=
if [ "$arch" != "$host_arch" ]; then
	gnu=$(dpkg-architecture -a"$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null) || gnu=
	if [ -z "$gnu" ] || ! command -v "$gnu-strip" >/dev/null; then
		echo "$0: no binutils for $arch (${gnu:-unknown GNU type}-strip)" >&2
		exit 1
	fi
	tool=$gnu-
	libdir=/usr/$gnu/lib
fi

# One timestamp for the generated changelog entry and the archive members,
# so that two builds of one commit give the same package.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# /usr/share/doc/serfd: the DEP-5 copyright and the changelog. A VERSION
# other than the changelog's top entry (`make deb DEB_VERSION=0.1.1`) gets an
# entry of its own, so the changelog always names the package built. Debian
# policy 12.7: a native version (no "-revision", e.g. 0.1.0) has
# changelog.gz, a non-native one (0.1.0-1) changelog.Debian.gz.
doc=$stage/usr/share/doc/$pkg
install -d -m 0755 "$doc"
install -m 0644 "$here/copyright" "$doc/copyright"
case $version in
*-*) changelog=changelog.Debian.gz ;;
*) changelog=changelog.gz ;;
esac
top=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$here/changelog")
{
	if [ "$top" != "$version" ]; then
		describe=$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)
		printf '%s (%s) unstable; urgency=medium\n\n' "$pkg" "$version"
		printf '  * Package build of source %s.\n\n' "$describe"
		printf ' -- %s  %s\n\n' "$maint" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")"
	fi
	cat "$here/changelog"
} | gzip -9n >"$doc/$changelog"

# The binaries come stripped (-ldflags -s); drop the compiler's .comment
# and .note sections as dh_strip does (build IDs stay).
"${tool}strip" --remove-section=.comment --remove-section=.note \
	"$stage/usr/bin/serfd" "$stage/usr/bin/serfctl"

# Permissions: directories 0755, executables (binaries, example handlers)
# 0755, everything else 0644; ownership is set by --root-owner-group.
rm -rf "$stage/DEBIAN"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -perm /0111 -exec chmod 0755 {} +
find "$stage" -type f ! -perm /0111 -exec chmod 0644 {} +

# Installed-Size in KiB, before DEBIAN exists.
size=$(du -s -k "$stage" | cut -f1)
install -d -m 0755 "$stage/DEBIAN"

# Depends: libc6 as dpkg-shlibdeps computes it from the binaries' symbol
# versions. It finds the package root by its DEBIAN directory and insists on
# a debian/control, so it runs in a scratch directory that has one. Without
# it, fall back to the newest GLIBC_ version the binaries import.
#
# Cross-built binaries: -l points it at the cross libc, whose shlibs file
# (libc6-arm64-cross's) names the dependency "libc6:arm64 (>= V)"; in a
# package of that architecture that is plain "libc6 (>= V)". Should it name
# a cross package (which no system of ARCH has), fall back too.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$pkg" "$pkg" >"$scratch/debian/control"
shlibs=
if command -v dpkg-shlibdeps >/dev/null; then
	shlibs=$(cd "$scratch" && dpkg-shlibdeps ${libdir:+"-l$libdir"} -O "$stage/usr/bin/serfd" "$stage/usr/bin/serfctl" |
		sed -n 's/^shlibs:Depends=//p') || shlibs=
	shlibs=$(printf '%s' "$shlibs" | sed "s/:$arch\([ ,]\|\$\)/\1/g")
	case $shlibs in
	*-cross*)
		echo "$0: dpkg-shlibdeps named a cross package ($shlibs); using the GLIBC_ versions" >&2
		shlibs=
		;;
	esac
fi
if [ -z "$shlibs" ]; then
	glibc=$("${tool}objdump" -T "$stage/usr/bin/serfd" "$stage/usr/bin/serfctl" |
		grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
	if [ -z "$glibc" ]; then
		echo "$0: cannot tell which glibc the binaries need" >&2
		exit 1
	fi
	shlibs="libc6 (>= $glibc)"
fi

sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" \
	-e "s|@INSTALLED_SIZE@|$size|" -e "s|@SHLIBS@|$shlibs|" \
	"$here/control.in" >"$stage/DEBIAN/control"
if grep -q '@[A-Z_]*@' "$stage/DEBIAN/control"; then
	echo "$0: unsubstituted field in control:" >&2
	grep '@[A-Z_]*@' "$stage/DEBIAN/control" >&2
	exit 1
fi

# Every regular file under /etc is a conffile (today: /etc/serf/config.hcl);
# dpkg keeps the admin's edits on upgrade and deletes them on purge.
(cd "$stage" && find etc -type f | sort | sed 's|^|/|') >"$stage/DEBIAN/conffiles"
if [ ! -s "$stage/DEBIAN/conffiles" ]; then
	rm "$stage/DEBIAN/conffiles"
fi

# md5sums of every other file (dpkg records conffiles' sums itself).
(
	cd "$stage"
	find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
		grep -v -x -F -f <(sed 's|^/||' DEBIAN/conffiles 2>/dev/null || true) |
		xargs -r -d '\n' md5sum
) >"$stage/DEBIAN/md5sums"

for script in postinst prerm postrm; do
	install -m 0755 "$here/$script" "$stage/DEBIAN/$script"
done
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
if [ -e "$stage/DEBIAN/conffiles" ]; then
	chmod 0644 "$stage/DEBIAN/conffiles"
fi

mkdir -p "$(dirname "$out")"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out: $(du -h "$out" | cut -f1) ($(stat -c %s "$out") bytes), $pkg $version $arch, Depends: $shlibs, systemd"
