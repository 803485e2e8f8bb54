#!/usr/bin/env bash
# Installs the outside programs difusion drives (rsync, OpenSSH) and the lab uses (sshd, Apache),
# when they are missing. Debian/Ubuntu only; as root, or with sudo.
set -euo pipefail
want=()
command -v rsync >/dev/null || want+=(rsync)
command -v ssh >/dev/null || want+=(openssh-client)
command -v sha256sum >/dev/null || want+=(coreutils)
if [[ "${1:-}" == --lab ]]; then
  [[ -x /usr/sbin/sshd ]] || want+=(openssh-server)
  [[ -x /usr/sbin/apache2 ]] || want+=(apache2)
fi
((${#want[@]} == 0)) && exit 0
echo "installing: ${want[*]}" >&2
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
