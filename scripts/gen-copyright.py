#!/usr/bin/env python3
"""Writes the packages' licence information from Cargo's dependency graph.

    scripts/gen-copyright.py copyright OUT    # Debian machine-readable copyright (DEP-5)
    scripts/gen-copyright.py rpm-license      # prints the RPM License: expression

Covers every crate linked into the packaged binaries: the normal (not dev, not build)
dependencies, transitively, of the module's and the helper's crates, as
`cargo metadata --locked` resolves them for this platform. Licence names come from each
crate's Cargo.toml; copyright lines, MIT permission texts and NOTICE files from the crate's
own files in the Cargo registry. Generated at package time, so it stays true when
Cargo.lock changes. Used by scripts/package.sh; see docs/packaging.md.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

PACKAGED_CRATES = ("mod_fcgi_resilient", "fcgi-resilient-helper")
PROJECT = "mod_fcgi_resilient"
# Debian ships these texts; lintian wants a reference instead of a copy.
COMMON_LICENSES = {"Apache-2.0": "/usr/share/common-licenses/Apache-2.0"}
LICENCE_FILE = re.compile(r"^(licen[cs]e|copying|copyright|notice)", re.IGNORECASE)
NOTICE_FILE = re.compile(r"^notice", re.IGNORECASE)
# A holder line, not the Apache text's "Copyright [yyyy] [name of copyright owner]" template
# or its prose ("copyright notice", "copyright owner").
COPYRIGHT_LINE = re.compile(r"^\s*(copyright\s*(\(c\)|©|\d{4})|\(c\)\s*\d{4}|©)", re.IGNORECASE)
COPYRIGHT_WORD = re.compile(r"^copyright\s*(\(c\)|©)?\s*", re.IGNORECASE)
MIT_TITLE = re.compile(r"^\s*(the\s+)?mit\s+licen[cs]e", re.IGNORECASE)


def cargo_metadata():
    host = subprocess.run(["rustc", "-vV"], check=True, capture_output=True, text=True).stdout
    triple = re.search(r"^host: (\S+)$", host, re.MULTILINE).group(1)
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", triple],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def linked_crates(metadata):
    """Returns {package id: set of packaged crate names it is linked into}."""
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    names = {package["id"]: package["name"] for package in metadata["packages"]}
    # A proc-macro (clap_derive, and syn & co. behind it) runs in the compiler: nothing of
    # it is linked, though Cargo lists it as a normal dependency.
    compile_time = {
        package["id"] for package in metadata["packages"]
        if any("proc-macro" in target["kind"] for target in package["targets"])
    }
    linked = {}
    for root in (pid for pid, name in names.items() if name in PACKAGED_CRATES):
        stack = [root]
        while stack:
            pid = stack.pop()
            if names[root] in linked.setdefault(pid, set()):
                continue
            linked[pid].add(names[root])
            for dep in nodes[pid]["deps"]:
                # kind None is a normal dependency; "dev" and "build" are not linked.
                if any(kind["kind"] is None for kind in dep["dep_kinds"]) and dep["pkg"] not in compile_time:
                    stack.append(dep["pkg"])
    return linked


def licence_files(package):
    crate_dir = os.path.dirname(package["manifest_path"])
    found = [os.path.join(crate_dir, f) for f in sorted(os.listdir(crate_dir)) if LICENCE_FILE.match(f)]
    if package.get("license_file"):
        found.append(os.path.join(crate_dir, package["license_file"]))
    return [f for f in dict.fromkeys(found) if os.path.isfile(f)]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def copyright_holders(package, files):
    lines = []
    for path in files:
        lines += [line.strip() for line in read(path).splitlines() if COPYRIGHT_LINE.match(line)]
    # DEP-5 writes the holder without the word: "Copyright: 2014 The Rust Project Developers".
    lines = list(dict.fromkeys(COPYRIGHT_WORD.sub("", line) for line in lines))
    if lines:
        return lines
    # No notice in the crate's files: its authors, as Cargo.toml names them.
    if package["authors"]:
        return [re.sub(r"\s*<[^>]*>", "", a) for a in package["authors"]]
    return [f"the {package['name']} developers"]


def licence_names(expression):
    return sorted(set(re.findall(r"[A-Za-z0-9.+-]+", expression)) - {"OR", "AND", "WITH", "or", "and", "with"})


def dep5_expression(expression):
    # SPDX "MIT OR Apache-2.0" is DEP-5 "MIT or Apache-2.0"; "/" is an old Cargo spelling of OR.
    expression = expression.replace("/", " OR ")
    return re.sub(r"\b(OR|AND|WITH)\b", lambda m: m.group(1).lower(), expression)


def normalised(text):
    """The permission text without holder lines, title and line breaks: what must be equal
    for two crates to share one standalone License paragraph."""
    kept = [line for line in text.splitlines() if not COPYRIGHT_LINE.match(line) and not MIT_TITLE.match(line)]
    return " ".join(" ".join(kept).split())


def permission_text(text):
    kept = [line.rstrip() for line in text.splitlines() if not COPYRIGHT_LINE.match(line) and not MIT_TITLE.match(line)]
    while kept and not kept[0]:
        kept.pop(0)
    while kept and not kept[-1]:
        kept.pop()
    return kept


def field_body(lines):
    """Continuation lines of a deb822 field: one leading space, "." for an empty line."""
    return "".join(f" {line}\n" if line.strip() else " .\n" for line in lines)


def crate_licence_text(files, name, only_licence):
    """The crate's own text of licence `name`: LICENSE-<name>, or its single LICENSE file when
    `name` is the crate's only licence."""
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0].upper()
        if stem.endswith("-" + name.upper()):
            return read(path)
    texts = [p for p in files if not NOTICE_FILE.match(os.path.basename(p))]
    if only_licence and len(texts) == 1:
        return read(texts[0])
    return None


class Copyright:
    def __init__(self, metadata, linked):
        packages = {p["id"]: p for p in metadata["packages"]}
        self.crates = sorted((packages[pid] for pid in linked), key=lambda p: (p["name"], p["version"]))
        self.linked = {packages[pid]["name"]: sorted(into) for pid, into in linked.items()}
        # licence name -> list of (normalised text, text lines, first crate)
        self.variants = {}

    def project(self):
        return next(p for p in self.crates if p["name"] == PROJECT)

    def licence_label(self, name, files, crate, only_licence):
        """The DEP-5 short name for `name` as this crate words it: "MIT", or "MIT~crate" when
        its permission text differs from the one already recorded under that name."""
        if name in COMMON_LICENSES:
            return name
        text = crate_licence_text(files, name, only_licence)
        if text is None:
            self.variants.setdefault(name, [])
            return name
        variants = self.variants.setdefault(name, [])
        for norm, _, label in variants:
            if norm == normalised(text):
                return label
        label = name if not variants else f"{name}~{crate}"
        variants.append((normalised(text), permission_text(text), label))
        return label

    def files_paragraph(self, package):
        files = licence_files(package)
        local = package["source"] is None
        expression = package["license"] or "LicenseRef-" + package["name"]
        names = licence_names(expression)
        for name in names:
            label = self.licence_label(name, files, package["name"], len(names) == 1)
            if label != name:
                expression = re.sub(rf"(?<![\w.+~-]){re.escape(name)}(?![\w.+~-])", label, expression)
        lines = ["Files: *" if package["name"] == PROJECT else f"Files: cargo-registry/{package['name']}-{package['version']}/*"]
        holders = copyright_holders(package, files) if not local else [", ".join(package["authors"]) or PROJECT + " developers"]
        lines.append("Copyright: " + holders[0])
        lines += [f" {h}" for h in holders[1:]]
        lines.append("License: " + dep5_expression(expression))
        if not local:
            comment = textwrap.wrap(
                f"The crate {package['name']} {package['version']} from crates.io, statically linked into "
                + " and ".join(binary_names(self.linked[package["name"]])) + ".", 78, break_on_hyphens=False
            )
            for path in files:
                if NOTICE_FILE.match(os.path.basename(path)):
                    comment += ["", f"Its {os.path.basename(path)} file:"] + read(path).splitlines()
            lines.append("Comment:" + field_body(comment).rstrip("\n"))
        return "\n".join(lines) + "\n"

    def licence_paragraphs(self):
        out = []
        for name in sorted(self.variants.keys() | {n for n in COMMON_LICENSES if self.uses(n)}):
            if name in COMMON_LICENSES:
                out.append(
                    f"License: {name}\n"
                    f" On Debian systems the full text is in {COMMON_LICENSES[name]}; the RPM\n"
                    " package ships it as the LICENSE file next to this one.\n"
                )
                continue
            if not self.variants[name]:
                out.append(f"License: {name}\n See the crate's sources on crates.io: it ships no text of this licence.\n")
            for _, text, label in self.variants[name]:
                out.append(f"License: {label}\n" + field_body(text))
        return out

    def uses(self, name):
        return any(name in licence_names(p["license"] or "") for p in self.crates)

    def render(self):
        # Files paragraphs first (the variants they record are rendered after them).
        project = self.project()
        paragraphs = [self.files_paragraph(project)]
        paragraphs += [self.files_paragraph(p) for p in self.crates if p["source"] is not None]
        header = (
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            f"Upstream-Name: {PROJECT}\n"
            + (f"Source: {project['repository']}\n" if project.get("repository") else "")
            + "Comment:\n"
            " Generated by scripts/gen-copyright.py from `cargo metadata`: the project's\n"
            " crates and every crate linked into the packaged binaries\n"
            " (" + ", ".join(binary_names(PACKAGED_CRATES)) + ").\n"
        )
        return "\n".join([header] + paragraphs + self.licence_paragraphs())

    def rpm_license(self):
        """SPDX expression for the RPM License tag, as Fedora writes it for Rust packages: the
        distinct expressions of all linked crates joined with AND."""
        expressions = []
        for package in self.crates:
            expression = (package["license"] or "LicenseRef-" + package["name"]).replace("/", " OR ")
            if " OR " in expression and not expression.startswith("("):
                expression = f"({expression})"
            expressions.append(expression)
        project = self.project()["license"]
        rest = sorted(set(expressions) - {project})
        return " AND ".join([project] + rest)


def binary_names(crates):
    return ["mod_fcgi_resilient.so" if c == PROJECT else c for c in crates]


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("copyright", "rpm-license") or (sys.argv[1] == "copyright") != (len(sys.argv) == 3):
        print(__doc__, file=sys.stderr)
        return 2
    metadata = cargo_metadata()
    copyright = Copyright(metadata, linked_crates(metadata))
    if sys.argv[1] == "rpm-license":
        print(copyright.rpm_license())
    else:
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(copyright.render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
