# Sourced by the Go module build scripts: read_pins WHO KEY... fills the associative array `pin`
# from integration/go-modules.env (the one place versions are pinned) and fails naming any KEY
# that is missing. KEY=value lines are parsed, not sourced: values hold spaces.
declare -A pin
read_pins() {
  local who=$1 line k env_file
  shift
  env_file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/go-modules.env"
  while IFS= read -r line; do
    [[ "$line" =~ ^([A-Z0-9_]+)=(.*)$ ]] || continue
    pin[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
  done < "$env_file"
  for k in "$@"; do
    [ -n "${pin[$k]:-}" ] || { echo "$who: $k missing in integration/go-modules.env" >&2; exit 1; }
  done
}
