#!/usr/bin/env python3
"""Checks that the docs stay skimmable (docs/architecture.md § The code's shape): no line of
docs/*.md or README.md longer than 500 characters, no Markdown table cell longer than 400
(what does not fit goes into prose below the table or into the doc that owns it), and every
link to a Markdown file in the repository, with its #anchor, leads somewhere.

  scripts/check_docs.py               checks docs/*.md and README.md
  scripts/check_docs.py FILE...       checks those files
  scripts/check_docs.py --self-test   first shows it finds a planted breach of each kind

Exit status 0 when nothing is found, 1 with one line per breach on stdout.
"""
import os
import re
import sys
import tempfile

MAX_LINE = 500
MAX_CELL = 400
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LINK = re.compile(r"\]\(([^)\s]+?\.md)(#[^)\s]*)?\)|\]\((#[^)\s]+)\)")


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    found, seen, fence = set(), {}, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and re.match(r"#{1,6} ", line):
            base = slug(line.lstrip("#"))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def cells(line):
    """The cells of a table row; `|` inside code spans and escaped `\\|` do not split."""
    out, cell, code = [], "", False
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            cell += body[i : i + 2]
            i += 2
            continue
        if c == "`":
            code = not code
        if c == "|" and not code:
            out.append(cell)
            cell = ""
        else:
            cell += c
        i += 1
    out.append(cell)
    return [c.strip() for c in out]


def check(path, shown):
    problems, fence = [], False
    for number, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        where = f"{shown}:{number}"
        if len(line) > MAX_LINE:
            problems.append(f"{where}: line of {len(line)} characters (at most {MAX_LINE}): wrap it")
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if line.lstrip().startswith("|"):
            longest = max(cells(line), key=len)
            if len(longest) > MAX_CELL:
                problems.append(
                    f"{where}: table cell of {len(longest)} characters (at most {MAX_CELL}): "
                    f"move the detail below the table: {longest[:60]}…")
        for match in LINK.finditer(line):
            target, anchor, local = match.groups()
            if local:
                target, anchor = os.path.basename(path), local
            if re.match(r"[a-z]+:", target):
                continue
            file = os.path.normpath(os.path.join(os.path.dirname(path), target))
            if not os.path.isfile(file):
                problems.append(f"{where}: link to {target}, which does not exist")
            elif anchor and anchor[1:] not in anchors(file):
                problems.append(f"{where}: link to {target}{anchor}: no such heading")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        sample = os.path.join(tmp, "sample.md")
        with open(sample, "w", encoding="utf-8") as out:
            out.write("# A doc\n\n## Some section\n\n")
            out.write("x" * MAX_LINE + "\n")              # at the bound: fine
            out.write("y" * (MAX_LINE + 1) + "\n")        # one over
            out.write("| a | b |\n|---|---|\n")
            out.write(f"| `x|y` | {'c' * MAX_CELL} |\n")  # at the bound, a | in code: fine
            out.write(f"| short | {'d' * (MAX_CELL + 1)} |\n")
            out.write("```\n| " + "e" * (MAX_CELL + 1) + " |\n```\n")  # code, not a table
            out.write("[fine](#some-section) [broken](#no-section) [gone](missing.md)\n")
        found = check(sample, "sample.md")
        expected = ["sample.md:6: line", "sample.md:10: table cell",
                    "sample.md:14: link to sample.md#no-section", "sample.md:14: link to missing.md"]
        if len(found) != len(expected) or not all(
                f.startswith(e) for f, e in zip(found, expected)):
            print("check_docs.py does not find the planted breaches:", *found, sep="\n  ")
            return False
    return True


def main(argv):
    if argv[:1] == ["--self-test"]:
        if not self_test():
            return 1
        argv = argv[1:]
    os.chdir(ROOT)
    files = argv or sorted(
        os.path.join("docs", f) for f in os.listdir("docs") if f.endswith(".md")) + ["README.md"]
    problems = [p for f in files for p in check(f, f)]
    if problems:
        print("\n".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
