#!/usr/bin/env bash
# Installs the outside programs difusion drives (rsync, OpenSSH) and the lab uses (sshd, Apache),
# when they are missing. With --lab, also what the tests need. Debian/Ubuntu only; as root, or with sudo.
set -euo pipefail
want=()
command -v rsync >/dev/null || want+=(rsync)
command -v ssh >/dev/null || want+=(openssh-client)
command -v sha256sum >/dev/null || want+=(coreutils)
if [[ "${1:-}" == --lab ]]; then
  [[ -x /usr/sbin/sshd ]] || want+=(openssh-server)
  [[ -x /usr/sbin/apache2 ]] || want+=(apache2)
  # What a person reads is checked in a real browser; the memoria técnica against AWStats and GoAccess.
  [[ -x /usr/bin/chromium ]] || want+=(chromium fonts-dejavu-core)
  [[ -x /usr/lib/cgi-bin/awstats.pl ]] || want+=(awstats)
  command -v goaccess >/dev/null || want+=(goaccess)
  # Lab WANs: network namespaces, veth pairs and htb shaping.
  command -v tc >/dev/null || want+=(iproute2)
  command -v curl >/dev/null || want+=(curl)
fi
((${#want[@]} == 0)) && exit 0
echo "installing: ${want[*]}" >&2
sudo=()
((EUID == 0)) || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
