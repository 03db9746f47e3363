"""Packs the Shakespeare corpus into the one compressed file mechlab ships.

    python3 tools/data/pack_shakespeare.py SOURCE_DIR engine/data/shakespeare/works.jsonl.gz

SOURCE_DIR holds one plain-text file per work (the `shakespeare` 0.6 package's texts; see
engine/data/shakespeare/PROVENANCE.md). The output is gzip'd JSON lines, one work a line in file
name order: {"file": "hamlet", "title": <the first line of the text>, "text": <the whole text>}.
The gzip header carries no time or name, so the same texts give the same bytes.
"""

import gzip
import io
import json
import os
import sys


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    buf = io.BytesIO()
    for name in sorted(os.listdir(src)):
        if not name.endswith(".txt"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            text = f.read()
        title = text.strip().splitlines()[0].strip()
        line = json.dumps({"file": name[:-4], "title": title, "text": text}, ensure_ascii=False)
        buf.write(line.encode("utf-8") + b"\n")
    with open(out, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
            gz.write(buf.getvalue())


if __name__ == "__main__":
    main()
