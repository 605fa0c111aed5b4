#!/usr/bin/env bash
# Checks the C++ sources' shape (docs/architecture.md § The code's shape): every file as
# .clang-format formats it (clang-format 14, Debian 12's; another version formats
# differently, so the check then says "skipped"), no function in src/ longer than
# 80 lines (scripts/function_lengths.py, which first shows it finds one), every
# enumerator in lower_snake_case, and src/'s include graph within the dependency rules
# (scripts/check_includes.py, which first shows it finds a planted breach of each kind).
set -euo pipefail
cd "$(dirname "$0")/.."

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t sources < <(git ls-files '*.cc' '*.h')
else
  mapfile -t sources < <(find src tests scripts -name '*.cc' -o -name '*.h' | sort)
fi
mapfile -t product < <(printf '%s\n' "${sources[@]}" | grep '^src/')

# The length check on a function of 81 lines and one of 80: only the first is reported.
sample=$(mktemp --suffix=.cc)
trap 'rm -f "$sample"' EXIT
{
  echo 'int long_one() {'; for ((i = 0; i < 79; ++i)); do echo '  f();'; done; echo '}'
  echo 'int short_one() {'; for ((i = 0; i < 78; ++i)); do echo '  f();'; done; echo '}'
} >"$sample"
found=$(scripts/function_lengths.py --max 80 "$sample" || true)
if [[ $(wc -l <<<"$found") -ne 1 || $found != "81 $sample:1 int long_one()" ]]; then
  echo "function_lengths.py does not find the 81-line sample function: '$found'" >&2
  exit 1
fi

failed=0
if ! scripts/function_lengths.py --max 80 "${product[@]}"; then
  echo "functions over 80 lines in src/ (above): split them" >&2
  failed=1
fi

# One enumerator style: lower_snake_case (`enum class Kind { admitted, queued }`).
if ! python3 - "${sources[@]}" <<'PY'; then
import re, sys
bad = []
for path in sys.argv[1:]:
    text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
    for m in re.finditer(r"\benum\s+(?:class\s+)?(\w+)\s*(?::\s*[\w:]+)?\s*\{([^}]*)\}", text):
        for name in re.findall(r"(?:^|,)\s*(\w+)", m.group(2)):
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                bad.append(f"{path}: enum {m.group(1)}: {name}")
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
  echo "enumerators not in lower_snake_case (above)" >&2
  failed=1
fi

if ! scripts/check_includes.py --self-test; then
  echo "includes that break the dependency rules (above): docs/architecture.md § Which folder may include which" >&2
  failed=1
fi

version=$(clang-format --version 2>/dev/null | grep -o 'version [0-9]*' | cut -d' ' -f2 || true)
if [[ -z $version ]]; then
  echo "format: skipped (clang-format not installed; scripts/setup.sh installs it)"
elif [[ $version != 14 ]]; then
  echo "format: skipped (clang-format $version; the tree is formatted by version 14)"
elif ! clang-format --dry-run --Werror "${sources[@]}"; then
  echo "files differ from .clang-format (above): run clang-format -i on them" >&2
  failed=1
fi
exit $failed
