#!/usr/bin/env python3
"""Lists the functions defined in C++ files that are longer than a limit.

    scripts/function_lengths.py [--max N] FILE...

Prints "<lines> <file>:<line> <signature>" for every function definition longer than
N lines (80 by default), counted from the first line of its signature to its closing
brace, and exits 1 if there is one. Lambdas and local classes count as part of the
function they are in. The parse is lexical (comments and literals blanked, braces
matched), made for code formatted by the project's .clang-format; it is not a C++
parser, so a construct it cannot classify is treated as not being a function.
"""
import argparse
import re
import sys

CONTROL = re.compile(r"^(if|for|while|switch|catch|else|do|try|return)\b")
SCOPE = re.compile(r"^(template\s*<.*>\s*)?(namespace|extern\s+\"C\"|extern\b)")
TYPE = re.compile(r"^(template\s*<.*>\s*)?(class|struct|union|enum)\b")


def blank_literals(text):
    """The text with comments, string and character literals replaced by spaces
    (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            open_paren = text.find("(", i)
            delimiter = text[i + 2 : open_paren]
            j = text.find(")" + delimiter + '"', open_paren)
            j = n if j < 0 else j + len(delimiter) + 2
            out.append('""' + re.sub(r"[^\n]", " ", text[i + 2 : j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator: 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def paren_free(head):
    """`head` with everything inside parentheses removed."""
    depth, out = 0, []
    for c in head:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def is_function_head(head):
    head = head.strip()
    if "(" not in head or CONTROL.match(head) or SCOPE.match(head) or TYPE.match(head):
        return False
    # `x = {`, `return {`, `a, {` (in a list): an initialiser, not a body (comparisons aside).
    outside = re.sub(r"operator\s*[=!<>]?=|[=!<>]=", "", paren_free(head))
    return "=" not in outside and not re.search(r"(,|\breturn)\s*$", outside)


def long_functions(path, limit):
    text = blank_literals(open(path, encoding="utf-8").read())
    lines = text.split("\n")
    found = []
    # per open brace: "function", "body" (inside a function), "init" (a brace initialiser in a
    # head) or "scope" (namespace, class, aggregate)
    stack = []
    head, head_line = "", None
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("#"):
            continue
        for column, c in enumerate(line):
            if c == "{":
                if any(kind == "function" for kind, _, _ in stack):
                    stack.append(("body", None, None))
                elif column > 0 and re.match(r"[\w>\]]", line[column - 1]):
                    # `a_{1}` in a constructor's initialiser list, `T{}` in a default
                    # argument: part of the head (a body's brace follows a blank).
                    stack.append(("init", None, None))
                    head += c
                    continue
                elif is_function_head(head):
                    stack.append(("function", head_line or number, " ".join(head.split())))
                else:
                    stack.append(("scope", None, None))
                head, head_line = "", None
            elif c == "}":
                kind, start, signature = stack.pop() if stack else ("scope", None, None)
                if kind == "init":
                    head += c
                    continue
                if kind == "function" and number - start + 1 > limit:
                    found.append((number - start + 1, start, signature))
                head, head_line = "", None
            elif c == ";":
                if not any(kind == "function" for kind, _, _ in stack):
                    head, head_line = "", None
            else:
                if head_line is None and not c.isspace():
                    head_line = number
                head += c
        head += " "
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max", type=int, default=80)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    failed = False
    for path in args.files:
        for length, line, signature in long_functions(path, args.max):
            print(f"{length} {path}:{line} {signature[:120]}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
