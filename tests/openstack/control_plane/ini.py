"""Set one option of an OpenStack service's ini file, the value read from standard input (a
password never appears on a command line). Comments and other options are kept."""

import re
import sys


def set_option(path: str, section: str, key: str, value: str) -> None:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = re.compile(r"^\s*\[(.+)\]\s*$")
    option = re.compile(rf"^\s*{re.escape(key)}\s*=")
    current, insert_at, done = None, None, False
    for index, line in enumerate(lines):
        found = header.match(line)
        if found:
            if current == section and insert_at is None:
                insert_at = index
            current = found.group(1).strip()
            continue
        if current == section and option.match(line):
            lines[index] = f"{key} = {value}"
            done = True
            break
    if not done:
        if current == section and insert_at is None:
            lines.append(f"{key} = {value}")
        elif insert_at is not None:
            lines.insert(insert_at, f"{key} = {value}")
        else:
            lines += ["", f"[{section}]", f"{key} = {value}"]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    set_option(sys.argv[1], sys.argv[2], sys.argv[3], sys.stdin.read().strip())
