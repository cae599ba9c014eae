#!/usr/bin/env python3
"""Rewrites a .cu file's kernel launches for a host C++ compiler: `kernel<T>\n<<<grid, block>>>(args)` becomes
`emu_launch("kernel<T>", grid, block, kernel<T>, args)` (tests/emu/cuda_emu.h runs it on the CPU). Everything else
is copied as it is, and line breaks are kept, so compiler messages point at the .cu file's lines (a #line directive
names it).

usage: unchevron.py IN.cu OUT.cpp"""
import sys


def fail(path, text, at, why):
    line = text.count("\n", 0, at) + 1
    sys.exit(f"unchevron.py: {path}:{line}: {why}")


def matching(text, i, open_ch, close_ch, step):
    """Index of the bracket matching text[i], scanning by step (+1 forwards, -1 backwards); -1 if none."""
    depth = 0
    while 0 <= i < len(text):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i
        i += step
    return -1


def top_level_split(s):
    """s split at commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def rewrite(path, text):
    out, pos = [], 0
    while True:
        at = text.find("<<<", pos)
        if at < 0:
            out.append(text[pos:])
            return "".join(out)
        # the kernel: an identifier, maybe with a template argument list, then white space
        k = at - 1
        while k >= 0 and text[k].isspace():
            k -= 1
        if text[k] == ">":
            k = matching(text, k, ">", "<", -1) - 1
            if k < 0:
                fail(path, text, at, "unbalanced template arguments before <<<")
        end_name = k + 1
        while k >= 0 and (text[k].isalnum() or text[k] == "_"):
            k -= 1
        start = k + 1
        if start == end_name:
            fail(path, text, at, "no kernel name before <<<")
        close = text.find(">>>", at)
        if close < 0:
            fail(path, text, at, "<<< without >>>")
        config = top_level_split(text[at + 3:close])
        if len(config) != 2:
            fail(path, text, at, "only <<<grid, block>>> launches are emulated (no shared memory size or stream)")
        p = close + 3
        while text[p].isspace():
            p += 1
        if text[p] != "(":
            fail(path, text, at, "expected the kernel's arguments after >>>")
        args_end = matching(text, p, "(", ")", 1)
        if args_end < 0:
            fail(path, text, at, "unbalanced kernel arguments")
        kernel = text[start:at]
        args = text[p + 1:args_end]
        name = " ".join(kernel.split())
        launch = f'emu_launch("{name}", {config[0].strip()}, {config[1].strip()}, {kernel.strip()}'
        launch += (", " + args if args.strip() else "") + ")"
        # keep the number of lines: the rewritten launch holds the newlines of what it replaces
        lost = text.count("\n", start, args_end + 1) - launch.count("\n")
        out.append(text[pos:start] + launch + "\n" * max(lost, 0))
        pos = args_end + 1


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        text = f.read()
    result = f'#line 1 "{src}"\n' + rewrite(src, text)
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        f.write(result)
    import os
    os.replace(tmp, dst)


if __name__ == "__main__":
    main()
