#!/usr/bin/env bash
# No program of ours replaces a libevent or C library function for the whole process
# (STYLE.md: wrap a library or leave it; never interpose its symbols): no function that a
# program defines in its dynamic symbol table is one that libevent or glibc define too.
# Usage: no_symbol_interposition.sh NM PROGRAM...
# First shows that the comparison finds a planted case (a library against itself).
set -euo pipefail
nm_tool=$1
shift

# The functions `file` defines in its dynamic symbol table, without symbol versions.
defined_functions() {
  "$nm_tool" -D --defined-only "$1" | awk '$2 ~ /^[TWi]$/ { sub(/@.*/, "", $3); print $3 }' |
    sort -u
}

# libevent's and glibc's shared libraries as `program` loads them.
libraries_of() {
  ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
    grep -E '/lib(event[a-z_]*-[0-9.]+|c|m)\.so' || true
}

# The functions `program` defines that one of `libraries...` defines as well.
interposed() {
  local program=$1
  shift
  comm -12 <(defined_functions "$program") <(for l in "$@"; do defined_functions "$l"; done | sort -u)
}

status=0
for program in "$@"; do
  mapfile -t libraries < <(libraries_of "$program")
  if [[ ${#libraries[@]} -lt 2 ]]; then
    echo "$program: ldd found neither libevent nor glibc (${libraries[*]:-none}): cannot check" >&2
    exit 1
  fi
  if [[ -z $(interposed "${libraries[0]}" "${libraries[0]}") ]]; then
    echo "the check finds nothing in ${libraries[0]} against itself: it would miss an override" >&2
    exit 1
  fi
  found=$(interposed "$program" "${libraries[@]}")
  if [[ -n $found ]]; then
    echo "$program defines functions of libevent or glibc (symbol interposition):" >&2
    sed 's/^/  /' <<<"$found" >&2
    status=1
  else
    echo "$program: no libevent or glibc function defined (${#libraries[@]} libraries compared)"
  fi
done
exit $status
