"""A small YAML subset reader/writer for the test doubles (stdlib only).

Supported when reading:
  * block mappings and block sequences (any indentation, sequences may sit at
    the same indentation as their parent key, "- key: value" items)
  * plain, 'single' and "double" quoted scalars (one line each)
  * literal and folded block scalars (| |- |+ > >- >+, optional indent digit)
  * flow collections ([a, b], {a: 1}) possibly spanning lines
  * comments, blank lines, several documents separated by '---'
  * scalar resolution like the YAML 1.1 resolver used by sigs.k8s.io/yaml
    (go-yaml v2): null/~, true/false/yes/no/on/off, ints (dec/0x/0o), floats
Not supported (reported as errors): anchors/aliases, tags other than the
standard !!str/!!int/..., complex '?' keys, multi-line quoted scalars.

Errors are YAMLError("yaml: line N: message"), the shape go-yaml uses, so
the fake API server can wrap them as "error decoding patch: yaml: line N: ...".
"""

import json
import re

__all__ = ["YAMLError", "load", "load_all", "dump", "dump_all"]


class YAMLError(ValueError):
    pass


_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_HEX_RE = re.compile(r"^[-+]?0x[0-9a-fA-F_]+$")
_OCT_RE = re.compile(r"^[-+]?0o?[0-7_]+$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_BOOL_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"}
_BOOL_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"}
_NULLS = {"", "~", "null", "Null", "NULL"}


def resolve_plain(s):
    """Type a plain (unquoted) scalar."""
    if s in _NULLS:
        return None
    if s in _BOOL_TRUE:
        return True
    if s in _BOOL_FALSE:
        return False
    if _INT_RE.match(s):
        return int(s.replace("_", ""))
    if _HEX_RE.match(s):
        return int(s.replace("_", ""), 16)
    if _OCT_RE.match(s) and len(s.lstrip("+-")) > 1:
        t = s.replace("_", "").replace("0o", "0")
        return int(t, 8)
    if _FLOAT_RE.match(s) and any(ch.isdigit() for ch in s):
        return float(s.replace("_", ""))
    if s in (".inf", ".Inf", ".INF", "+.inf"):
        return float("inf")
    if s in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if s in (".nan", ".NaN", ".NAN"):
        return float("nan")
    return s


_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n",
            "v": "\v", "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"',
            "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0"}


class _Line:
    __slots__ = ("no", "indent", "text", "raw")

    def __init__(self, no, indent, text, raw):
        self.no, self.indent, self.text, self.raw = no, indent, text, raw


def _strip_comment(s):
    """Remove a trailing comment that is outside quotes."""
    out = []
    q = None
    i = 0
    while i < len(s):
        c = s[i]
        if q:
            out.append(c)
            if q == '"' and c == "\\" and i + 1 < len(s):
                out.append(s[i + 1])
                i += 2
                continue
            if c == q:
                if q == "'" and i + 1 < len(s) and s[i + 1] == "'":
                    out.append("'")
                    i += 2
                    continue
                q = None
        else:
            if c == "#" and (i == 0 or s[i - 1] in " \t"):
                break
            if c in "\"'" and (i == 0 or s[i - 1] in " \t[{,:-"):
                q = c
            out.append(c)
        i += 1
    return "".join(out).rstrip()


class _Parser:
    def __init__(self, text):
        self.raw_lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")

    # -- document splitting -------------------------------------------------
    def documents(self):
        docs, cur, start = [], [], 1
        for i, raw in enumerate(self.raw_lines, 1):
            if raw.startswith("---") and (len(raw) == 3 or raw[3] in " \t"):
                if cur or docs or start != 1:
                    docs.append((start, cur))
                cur, start = [], i + 1
                rest = raw[3:].strip()
                if rest and not rest.startswith("#"):
                    cur.append((i, " " * 4 + rest))
                continue
            if raw.startswith("...") and raw[3:].strip() == "":
                docs.append((start, cur))
                cur, start = [], i + 1
                continue
            if raw.startswith("%"):
                continue
            cur.append((i, raw))
        docs.append((start, cur))
        out = []
        for start, lines in docs:
            out.append(self._parse_doc(lines))
        # drop empty documents between separators like go-yaml's decoder does
        return [d for d in out if d is not _EMPTY]

    def _parse_doc(self, numbered):
        self.lines = []
        self.numbered = numbered
        for no, raw in numbered:
            if "\t" in raw[: len(raw) - len(raw.lstrip(" \t"))]:
                raise YAMLError("yaml: line %d: found character that cannot start any token" % no)
            text = _strip_comment(raw)
            if not text.strip():
                self.lines.append(_Line(no, -1, "", raw))
                continue
            ind = len(text) - len(text.lstrip(" "))
            self.lines.append(_Line(no, ind, text[ind:], raw))
        self.pos = 0
        self._skip_blank()
        if self.pos >= len(self.lines):
            return _EMPTY
        first = self.lines[self.pos]
        val = self._parse_node(first.indent)
        self._skip_blank()
        if self.pos < len(self.lines):
            ln = self.lines[self.pos]
            raise YAMLError("yaml: line %d: did not find expected key" % ln.no)
        return val

    def _skip_blank(self):
        while self.pos < len(self.lines) and self.lines[self.pos].indent < 0:
            self.pos += 1

    def _peek(self):
        self._skip_blank()
        if self.pos < len(self.lines):
            return self.lines[self.pos]
        return None

    # -- block nodes -----------------------------------------------------------
    def _parse_node(self, indent):
        ln = self._peek()
        if ln is None:
            return None
        if ln.text == "-" or ln.text.startswith("- "):
            return self._parse_seq(ln.indent)
        if self._split_key(ln.text, ln.no) is not None:
            return self._parse_map(ln.indent)
        # a lone scalar (possibly a multi-line flow collection or plain scalar)
        self.pos += 1
        return self._scalar_or_flow(ln.text, ln.no, ln.indent)

    def _parse_seq(self, indent):
        out = []
        while True:
            ln = self._peek()
            if ln is None or ln.indent < indent:
                break
            if ln.indent > indent:
                raise YAMLError("yaml: line %d: did not find expected '-' indicator" % ln.no)
            if not (ln.text == "-" or ln.text.startswith("- ")):
                if self._split_key(ln.text, ln.no) is not None:
                    break  # a sibling key of the parent mapping
                raise YAMLError("yaml: line %d: did not find expected '-' indicator" % ln.no)
            rest = ln.text[1:]
            stripped = rest.lstrip(" ")
            if not stripped:
                self.pos += 1
                nxt = self._peek()
                if nxt is not None and nxt.indent > indent:
                    out.append(self._parse_node(nxt.indent))
                else:
                    out.append(None)
                continue
            # the item content starts at a virtual indentation
            sub_indent = indent + 1 + (len(rest) - len(stripped))
            ln.indent = sub_indent
            ln.text = stripped
            out.append(self._parse_inline_item(ln))
        return out

    def _parse_inline_item(self, ln):
        if ln.text == "-" or ln.text.startswith("- "):
            return self._parse_seq(ln.indent)
        if self._split_key(ln.text, ln.no) is not None:
            return self._parse_map(ln.indent)
        self.pos += 1
        return self._scalar_or_flow(ln.text, ln.no, ln.indent)

    def _split_key(self, text, no):
        """Return (key, rest) if text is 'key: ...' / 'key:' else None."""
        if text.startswith("? "):
            raise YAMLError("yaml: line %d: complex mapping keys are not supported" % no)
        if text[:1] in "[{":
            return None
        if text[:1] in "\"'":
            q = text[0]
            i = 1
            while i < len(text):
                if q == '"' and text[i] == "\\":
                    i += 2
                    continue
                if text[i] == q:
                    if q == "'" and i + 1 < len(text) and text[i + 1] == "'":
                        i += 2
                        continue
                    break
                i += 1
            else:
                return None
            after = text[i + 1:]
            if after.startswith(":") and (len(after) == 1 or after[1] in " \t"):
                key = self._quoted(text[: i + 1], no)
                return key, after[1:].strip()
            return None
        m = re.match(r"^([^#]*?)\s*:(\s+|$)", text)
        if not m:
            return None
        key = m.group(1)
        if key.startswith(("- ", "&", "*", "!", "|", ">", "%", "@", "`")):
            if key.startswith(("&", "*")):
                raise YAMLError("yaml: line %d: anchors and aliases are not supported" % no)
            return None
        return key, text[m.end():].strip()

    def _parse_map(self, indent):
        out = {}
        while True:
            ln = self._peek()
            if ln is None or ln.indent < indent:
                break
            if ln.indent > indent:
                raise YAMLError("yaml: line %d: mapping values are not allowed in this context" % ln.no)
            kv = self._split_key(ln.text, ln.no)
            if kv is None:
                if ln.text == "-" or ln.text.startswith("- "):
                    raise YAMLError("yaml: line %d: did not find expected key" % ln.no)
                raise YAMLError("yaml: line %d: could not find expected ':'" % ln.no)
            key, rest = kv
            if isinstance(key, str) and key in out:
                raise YAMLError('yaml: line %d: key "%s" already set in map' % (ln.no, key))
            key = key if not isinstance(key, str) else key
            self.pos += 1
            if rest == "":
                nxt = self._peek()
                if nxt is not None and (nxt.indent > indent or
                                        (nxt.indent == indent and (nxt.text == "-" or nxt.text.startswith("- ")))):
                    out[key] = self._parse_node(nxt.indent)
                else:
                    out[key] = None
            elif rest[0] in "|>":
                out[key] = self._block_scalar(rest, ln, indent)
            else:
                if rest.startswith(("&", "*")):
                    raise YAMLError("yaml: line %d: anchors and aliases are not supported" % ln.no)
                out[key] = self._scalar_or_flow(rest, ln.no, indent, continuation=True)
        return out

    def _block_scalar(self, header, ln, parent_indent):
        m = re.match(r"^([|>])([-+]?)([1-9]?)([-+]?)$", header.strip())
        if not m:
            raise YAMLError("yaml: line %d: did not find expected comment or line break" % ln.no)
        style = m.group(1)
        chomp = m.group(2) or m.group(4)
        explicit = int(m.group(3)) if m.group(3) else None
        # gather raw lines (comments inside block scalars are content)
        raw_idx = self.pos
        body = []
        block_indent = parent_indent + explicit if explicit else None
        while raw_idx < len(self.lines):
            L = self.lines[raw_idx]
            raw = L.raw
            stripped = raw.lstrip(" ")
            ind = len(raw) - len(stripped)
            if stripped == "":
                body.append("")
                raw_idx += 1
                continue
            if block_indent is None:
                if ind <= parent_indent:
                    break
                block_indent = ind
            if ind < block_indent:
                break
            body.append(raw[block_indent:])
            raw_idx += 1
        self.pos = raw_idx
        # trailing empty lines
        trail = 0
        while body and body[-1] == "":
            body.pop()
            trail += 1
        if style == "|":
            text = "\n".join(body)
        else:
            parts = []
            prev_more = False
            for i, b in enumerate(body):
                more = b.startswith((" ", "\t"))
                if i == 0:
                    parts.append(b)
                elif b == "":
                    parts.append("\n")
                elif parts and parts[-1] == "\n" or more or prev_more:
                    parts.append(("\n" if not (parts and parts[-1] == "\n") else "") + b)
                else:
                    parts.append(" " + b)
                prev_more = more
            text = "".join(parts)
        if not body:
            text = ""
        if chomp == "-":
            return text
        if chomp == "+":
            return text + "\n" * (1 + trail) if body else "\n" * trail
        return text + "\n" if body else ""

    # -- scalars & flow --------------------------------------------------------
    def _scalar_or_flow(self, text, no, indent, continuation=False):
        if text[:1] in "[{":
            buf = text
            while not self._flow_complete(buf):
                ln = self._peek()
                if ln is None:
                    raise YAMLError("yaml: line %d: did not find expected ',' or ']'" % no)
                buf += " " + ln.text
                self.pos += 1
            val, end = self._flow(buf, 0, no)
            if buf[end:].strip():
                raise YAMLError("yaml: line %d: did not find expected <document start>" % no)
            return val
        if text[:1] in "\"'":
            return self._quoted(text, no)
        if text.startswith(("&", "*")):
            raise YAMLError("yaml: line %d: anchors and aliases are not supported" % no)
        if text.startswith("!"):
            tag, _, rest = text.partition(" ")
            if tag == "!!str":
                return rest if rest[:1] not in "\"'" else self._quoted(rest, no)
            if tag in ("!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq"):
                return self._scalar_or_flow(rest, no, indent)
            raise YAMLError("yaml: line %d: tags are not supported" % no)
        if ": " in text or text.endswith(":"):
            raise YAMLError("yaml: line %d: mapping values are not allowed in this context" % no)
        # multi-line plain scalars: following more-indented lines fold with a space
        parts = [text]
        if continuation:
            while True:
                ln = self._peek()
                if ln is None or ln.indent <= indent:
                    break
                if self._split_key(ln.text, ln.no) is not None:
                    raise YAMLError("yaml: line %d: mapping values are not allowed in this context" % ln.no)
                parts.append(ln.text)
                self.pos += 1
        return resolve_plain(" ".join(parts))

    @staticmethod
    def _flow_complete(s):
        depth, q, i = 0, None, 0
        while i < len(s):
            c = s[i]
            if q:
                if q == '"' and c == "\\":
                    i += 2
                    continue
                if c == q:
                    q = None
            elif c in "\"'":
                q = c
            elif c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            i += 1
        return depth <= 0 and q is None

    def _quoted(self, text, no):
        q = text[0]
        out = []
        i = 1
        while i < len(text):
            c = text[i]
            if q == "'":
                if c == "'":
                    if i + 1 < len(text) and text[i + 1] == "'":
                        out.append("'")
                        i += 2
                        continue
                    end = i + 1
                    break
                out.append(c)
            else:
                if c == "\\":
                    if i + 1 >= len(text):
                        raise YAMLError("yaml: line %d: found unexpected end of stream" % no)
                    e = text[i + 1]
                    if e in _ESCAPES:
                        out.append(_ESCAPES[e])
                        i += 2
                        continue
                    n = {"x": 2, "u": 4, "U": 8}.get(e)
                    if n:
                        try:
                            out.append(chr(int(text[i + 2:i + 2 + n], 16)))
                        except ValueError:
                            raise YAMLError("yaml: line %d: found unknown escape character while parsing a quoted scalar" % no)
                        i += 2 + n
                        continue
                    raise YAMLError("yaml: line %d: found unknown escape character while parsing a quoted scalar" % no)
                if c == '"':
                    end = i + 1
                    break
                out.append(c)
            i += 1
        else:
            raise YAMLError("yaml: line %d: found unexpected end of stream" % no)
        if text[end:].strip():
            raise YAMLError("yaml: line %d: did not find expected key" % no)
        return "".join(out)

    def _flow(self, s, i, no):
        while i < len(s) and s[i] == " ":
            i += 1
        if i >= len(s):
            raise YAMLError("yaml: line %d: did not find expected node content" % no)
        c = s[i]
        if c == "[":
            out = []
            i += 1
            while True:
                while i < len(s) and s[i] == " ":
                    i += 1
                if i < len(s) and s[i] == "]":
                    return out, i + 1
                v, i = self._flow(s, i, no)
                out.append(v)
                while i < len(s) and s[i] == " ":
                    i += 1
                if i < len(s) and s[i] == ",":
                    i += 1
                    continue
                if i < len(s) and s[i] == "]":
                    return out, i + 1
                raise YAMLError("yaml: line %d: did not find expected ',' or ']'" % no)
        if c == "{":
            out = {}
            i += 1
            while True:
                while i < len(s) and s[i] == " ":
                    i += 1
                if i < len(s) and s[i] == "}":
                    return out, i + 1
                k, i = self._flow_scalar(s, i, no, key=True)
                while i < len(s) and s[i] == " ":
                    i += 1
                if i < len(s) and s[i] == ":":
                    v, i = self._flow(s, i + 1, no)
                else:
                    v = None
                out[k] = v
                while i < len(s) and s[i] == " ":
                    i += 1
                if i < len(s) and s[i] == ",":
                    i += 1
                    continue
                if i < len(s) and s[i] == "}":
                    return out, i + 1
                raise YAMLError("yaml: line %d: did not find expected ',' or '}'" % no)
        return self._flow_scalar(s, i, no)

    def _flow_scalar(self, s, i, no, key=False):
        if s[i] in "\"'":
            q = s[i]
            j = i + 1
            while j < len(s):
                if q == '"' and s[j] == "\\":
                    j += 2
                    continue
                if s[j] == q:
                    if q == "'" and j + 1 < len(s) and s[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            return self._quoted(s[i:j + 1], no), j + 1
        j = i
        while j < len(s) and s[j] not in ",]}":
            if s[j] == ":" and (j + 1 >= len(s) or s[j + 1] in " ,]}"):
                break
            j += 1
        tok = s[i:j].strip()
        return (tok if key else resolve_plain(tok)), j


_EMPTY = object()


def load_all(text):
    """Parse every document; empty documents are skipped."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _Parser(text).documents()


def load(text):
    """Parse exactly one document (None for an empty stream)."""
    docs = load_all(text)
    if not docs:
        return None
    if len(docs) > 1:
        raise YAMLError("yaml: expected a single document in the stream")
    return docs[0]


# -- writer -----------------------------------------------------------------
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./ :-]*$")


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    if (s == "" or not _PLAIN_SAFE.match(s) or s != s.strip() or ": " in s or s.endswith(":")
            or resolve_plain(s) != s or s.startswith(("- ", "-", "?", "!", "&", "*"))):
        return json.dumps(s, ensure_ascii=False)
    return s


def _dump(v, indent, out):
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            out.append(pad + "{}")
            return
        for k, x in v.items():
            key = _scalar(str(k))
            if isinstance(x, dict) and x:
                out.append("%s%s:" % (pad, key))
                _dump(x, indent + 2, out)
            elif isinstance(x, list) and x:
                out.append("%s%s:" % (pad, key))
                _dump(x, indent, out)
            elif isinstance(x, str) and "\n" in x:
                out.append("%s%s: |%s" % (pad, key, "" if x.endswith("\n") else "-"))
                for line in x.rstrip("\n").split("\n"):
                    out.append((pad + "  " + line) if line else "")
            else:
                out.append("%s%s: %s" % (pad, key, _inline(x)))
    elif isinstance(v, list):
        if not v:
            out.append(pad + "[]")
            return
        for x in v:
            if isinstance(x, (dict, list)) and x:
                sub = []
                _dump(x, indent + 2, sub)
                first = sub[0]
                sub[0] = pad + "- " + first[indent + 2:]
                out.extend(sub)
            else:
                out.append("%s- %s" % (pad, _inline(x)))
    else:
        out.append(pad + _inline(v))


def _inline(x):
    if isinstance(x, dict):
        return "{}" if not x else json.dumps(x)
    if isinstance(x, list):
        return "[]" if not x else json.dumps(x)
    return _scalar(x)


def dump(v):
    """Block-style YAML for JSON-like data (keys kept in insertion order)."""
    out = []
    _dump(v, 0, out)
    return "\n".join(out) + "\n"


def dump_all(docs):
    return "".join("---\n" + dump(d) for d in docs)
