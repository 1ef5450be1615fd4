#!/usr/bin/env python3
"""Converts one of docs/*.md into a man page, so the manual cannot drift from the docs.

    scripts/gen-man.py DOC.md OUT NAME SECTION VERSION DATE

Handles the Markdown the docs use: ATX headings (# title, ## section, ### subsection), paragraphs,
"*"/"-" lists, fenced and indented code blocks, two-column tables, `code`, **bold**, *italic* and
[links](url). The NAME section is the doc's own "## NAME" when it has one (docs/helper.md), else
"NAME - " + the Description row of its first table (docs/mod_fcgi_resilient.md).
Used by scripts/package.sh; see docs/packaging.md.
"""

import re
import sys

# Characters the docs use that groff spells with escapes (man pages are read in any locale).
SPECIAL = {"—": r"\(em", "–": r"\(en", "→": r"\(->", "≥": r"\(>=", "≤": r"\(<=", "×": r"\(mu", "…": "...",
           "“": r"\(lq", "”": r"\(rq", "‘": r"\(oq", "’": r"\(cq"}
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*|(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|\[([^\]]+)\]\(([^)]+)\)")


def escape(text):
    text = text.replace("\\", r"\e")
    for char, roff in SPECIAL.items():
        text = text.replace(char, roff)
    return text


def literal(text):
    """Text that is typed as shown: minus signs, not hyphens, so it can be copied."""
    return escape(text).replace("-", r"\-")


def inline(text):
    """Markdown inline markup to roff font changes; everything else escaped."""
    out, pos = [], 0
    text = text.replace(r"\|", "|")
    for match in INLINE.finditer(text):
        out.append(escape(text[pos:match.start()]))
        code, bold, italic, link_text, url = match.groups()
        if code is not None:
            out.append(r"\fB" + literal(code) + r"\fR")
        elif bold is not None:
            out.append(r"\fB" + inline(bold) + r"\fR")
        elif italic is not None:
            out.append(r"\fI" + inline(italic) + r"\fR")
        elif url.startswith(("http://", "https://")):
            out.append(inline(link_text) + r" \(la" + literal(url) + r"\(ra")
        else:
            # A link to another doc of the project: its name is the reference.
            out.append(inline(link_text))
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def text_lines(text):
    """Filled text, one sentence piece per line; a line starting with . or ' would be a request."""
    return [r"\&" + line if line.startswith((".", "'")) else line for line in [inline(text)]]


def code_block(lines):
    body = [literal(line) for line in lines]
    body = [r"\&" + line if line.startswith((".", "'")) else line for line in body]
    return [".PP", ".RS 4", ".nf"] + body + [".fi", ".RE"]


def table_cells(row):
    cells = re.split(r"(?<!\\)\|", row.strip())
    return [c.strip() for c in cells[1:-1]]


def is_table_rule(row):
    return re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", row.strip()) is not None


class Converter:
    def __init__(self, lines):
        self.lines = lines
        self.out = []
        self.whatis = None

    def convert(self, name):
        i = 0
        paragraph, in_list = [], False

        def flush():
            nonlocal paragraph
            if paragraph:
                self.out += ([] if in_list else [".PP"]) + text_lines(" ".join(paragraph))
            paragraph = []

        while i < len(self.lines):
            line = self.lines[i]
            stripped = line.strip()
            if stripped.startswith("```"):
                flush()
                end = next(j for j in range(i + 1, len(self.lines)) if self.lines[j].strip().startswith("```"))
                self.out += code_block(self.lines[i + 1:end])
                in_list, i = False, end + 1
                continue
            if line.startswith("    ") and not in_list and not paragraph:
                flush()
                block = []
                while i < len(self.lines) and (self.lines[i].startswith("    ") or not self.lines[i].strip()):
                    block.append(self.lines[i][4:])
                    i += 1
                while block and not block[-1].strip():
                    block.pop()
                self.out += code_block(block)
                continue
            heading = re.match(r"^(#{1,4})\s+(.*)$", line)
            if heading:
                flush()
                in_list = False
                level, title = len(heading.group(1)), heading.group(2).strip()
                if level == 1:
                    pass  # the title is .TH
                elif level == 2:
                    # Man sections are upper case, but not directive names (FcgiResilientTimeout).
                    shown = title if re.search(r"[a-z][A-Z]", title) else title.upper()
                    self.out.append(".SH " + inline(shown))
                    if title.upper() == "NAME":
                        i = self.name_section(i + 1, name)
                        continue
                elif level == 3:
                    self.out.append(".SS " + inline(title))
                else:
                    self.out += [".PP", r"\fB" + inline(title) + r"\fR"]
                i += 1
                continue
            if stripped.startswith("|"):
                flush()
                i = self.table(i)
                continue
            item = re.match(r"^[*-]\s+(.*)$", line)
            if item:
                flush()
                self.out.append(r".IP \(bu 2")
                in_list = True
                paragraph = [item.group(1)]
            elif not stripped:
                flush()
                if in_list and not self.continues_list(i):
                    in_list = False
            elif in_list and not line.startswith(" ") and not paragraph:
                in_list = False
                paragraph = [stripped]
            else:
                paragraph.append(stripped)
            i += 1
        flush()
        return self.out

    def continues_list(self, i):
        following = next((l for l in self.lines[i + 1:] if l.strip()), "")
        return re.match(r"^[*-]\s+", following) is not None or following.startswith("  ")

    def name_section(self, i, name):
        """"`name` — what it does" becomes the whatis line "name \\- what it does"."""
        text = []
        while i < len(self.lines) and not self.lines[i].startswith("#"):
            if self.lines[i].strip():
                text.append(self.lines[i].strip())
            i += 1
        words = " ".join(text)
        what = re.split(r"\s+[—-]\s+", words, maxsplit=1)[-1]
        self.out.append(escape(name) + r" \- " + inline(what))
        self.whatis = what
        return i

    def table(self, i):
        rows = []
        while i < len(self.lines) and self.lines[i].strip().startswith("|"):
            if not is_table_rule(self.lines[i]):
                rows.append(table_cells(self.lines[i]))
            i += 1
        if rows and not any(rows[0]):
            rows = rows[1:]  # the docs' key/value tables have an empty header row
        for cells in rows:
            label, value = cells[0], " | ".join(cells[1:])
            if self.whatis is None and label.strip("*: ").lower() == "description":
                self.whatis = value
            self.out += [".TP", inline(label)] + text_lines(value)
        return i


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    source, target, name, section, version, date = sys.argv[1:]
    with open(source, encoding="utf-8") as f:
        lines = f.read().splitlines()
    converter = Converter(lines)
    body = converter.convert(name)
    if converter.whatis is None:
        print(f"gen-man: {source} has neither a NAME section nor a Description row", file=sys.stderr)
        return 1
    head = [
        f'.\\" Generated by scripts/gen-man.py from {source}; edit that file instead.',
        f'.TH {escape(name.upper())} {section} "{date}" "mod_fcgi_resilient {version}" "mod_fcgi_resilient"',
        # Left-aligned, no hyphenation: paths, options and directive names stay whole.
        ".ad l",
        ".nh",
    ]
    if ".SH NAME" not in body:
        what = converter.whatis[0].lower() + converter.whatis[1:]
        head += [".SH NAME", escape(name) + r" \- Apache module: " + inline(what)]
        if body and not body[0].startswith(".SH"):
            # What the doc says before its first section (the module's summary table).
            head.append(".SH MODULE")
    with open(target, "w", encoding="utf-8") as f:
        f.write("\n".join(head + body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
