"""Hostile and awkward documents (RELIABILITY.md cases 1-9 and 14), made in the test: each one ends in its
documented status while the rest of the batch is indexed, no parser can hang or bloat the indexer, and the
extraction sandbox kills and replaces a worker that overruns its limits."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import threading
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.catalog import FAILED, INDEXED, Document
from indexer.embedding import HashEmbedder
from indexer.extract import ExtractionError, ExtractionLimits, extract_document
from indexer.extract.model import ENCRYPTED, NO_TEXT, RESOURCE_LIMIT, TIMEOUT, UNREADABLE
from indexer.generation_reader import open_published
from indexer.ingest import IngestError
from indexer.pipeline import Indexer
from indexer.sandbox import ExtractionSandbox, SandboxLimits, exit_outcome
from indexer.settings import IndexerSettings
from search_api.searcher import Searcher
from tests.helpers import make_docx, make_pdf

MAX_PAGES = 50
GOOD_PDF_PAGES = [
    "Calibrated peer review lets learners grade four anonymous submissions with an analytic rubric.",
    "Instructors compared the calibrated grades with staff grades and found close agreement.",
]
GOOD_DOCX_TEXT = "Remote laboratories let engineering students operate real oscilloscopes over the network."
HOSTILE_TEXT = (
    "Mixed scripts: 翻转课堂 Взаимное оценивание การเรียน.\n"
    "A bidi override \u202eevil\u202c, an isolate \u2066here\u2069, a lone \ud800 surrogate, and Cafe\u0301."
)
HOSTILE_TEXT_CLEAN = (
    "Mixed scripts: 翻转课堂 Взаимное оценивание การเรียน.\n"
    "A bidi override evil, an isolate here, a lone surrogate, and Café."
)


# --- PDFs written by hand --------------------------------------------------------------------------------------


def _pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF with these object bodies (numbered from 1, the first one the catalog) and a classic xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def _stream(data: bytes, entries: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), entries, data)


def _pages_pdf(contents: list[bytes], catalog_entries: bytes = b"", extra: list[bytes] | None = None) -> bytes:
    """One page per content stream body, Helvetica as /F1; `extra` objects are numbered after the pages."""
    count = len(contents)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog_entries,
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(content)
    return _pdf(objects + (extra or []))


def _text_ops(*lines: bytes) -> bytes:
    return b"".join(b"BT /F1 12 Tf 72 %d Td (%s) Tj ET\n" % (700 - 20 * i, line) for i, line in enumerate(lines))


def _bits(bits: str) -> bytes:
    """Bits in the order Deflate writes them (least significant first in each byte), padded to whole bytes."""
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))


def deflate_bomb(size: int) -> bytes:
    """A valid zlib stream of about `size` spaces, a few bytes per kilobyte: one fixed-Huffman block of one
    literal and then back-references of 258 bytes at distance 1, each 13 bits (8 of them are 13 whole bytes)."""
    literal = "1" + "10" + "01010000"  # BFINAL, BTYPE=01 (fixed Huffman), the literal 0x20
    copy = "11000101" + "00000"  # length 258 (symbol 285), distance 1
    groups, rest = divmod(max(size // 258 - 1, 0), 8)
    body = _bits(literal + copy) + _bits(copy * 8) * groups + _bits(copy * rest + "0000000")  # 0000000: end
    length = 1 + 258 * (1 + 8 * groups + rest)
    a = (1 + ord(" ") * length) % 65521  # Adler-32 of `length` spaces, worked out instead of computed
    b = (length + ord(" ") * length * (length + 1) // 2) % 65521
    return b"\x78\x01" + body + ((b << 16) | a).to_bytes(4, "big")


def bomb_pdf() -> bytes:
    """Case 1: a content stream behind three FlateDecode filters that would expand to 4 GiB (the file: < 1 KB)."""
    layers = zlib.compress(zlib.compress(deflate_bomb(4 << 30), 9), 9)
    return _pages_pdf([_stream(layers, b"/Filter [/FlateDecode /FlateDecode /FlateDecode] ")])


def circular_prev_pdf() -> bytes:
    """Case 2: two cross-reference sections whose /Prev entries point at each other."""
    base = _pages_pdf([_stream(_text_ops(b"Circular cross references about cohort retention."))])
    placeholder = b"/Prev 0000000000 "
    base = base.replace(b"trailer\n<< ", b"trailer\n<< " + placeholder)
    first_xref = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    second_xref = len(base)
    update = b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 6 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
    return base.replace(placeholder, b"/Prev %010d " % second_xref) + update % (first_xref, second_xref)


def outline_cycle_pdf() -> bytes:
    """Case 2: bookmarks whose /Next and /First entries loop."""
    return _pages_pdf(
        [_stream(_text_ops(b"Looping bookmarks about discussion forum moderation."))],
        catalog_entries=b"/Outlines 6 0 R ",
        extra=[
            b"<< /Type /Outlines /First 7 0 R /Last 8 0 R /Count 2 >>",
            b"<< /Title (A) /Parent 6 0 R /Next 8 0 R /Prev 8 0 R /First 7 0 R >>",
            b"<< /Title (B) /Parent 6 0 R /Next 7 0 R /Prev 7 0 R /First 6 0 R >>",
        ],
    )


def inline_image_without_ei_pdf() -> bytes:
    """Case 2: page 2 holds an inline image whose data never ends (no EI)."""
    broken = b"q BI /W 100 /H 100 /BPC 8 /CS /G ID " + bytes(range(256)) * 64
    return _pages_pdf([_stream(_text_ops(b"The page before the broken image on tutoring.")), _stream(broken)])


def junk_after_eof_pdf(junk: bytes) -> bytes:
    """Case 2: a content stream that ends in a comment (no newline), then `junk` after %%EOF."""
    pdf = _pages_pdf([_stream(_text_ops(b"Trailing junk about accessibility captions.") + b"% comment at the end")])
    return pdf + junk


def encrypted_pdf(user_password: str) -> bytes:
    """Case 4: AES-256 with a user password (or an empty one: the text is readable, copying is restricted)."""
    from pypdf import PdfReader, PdfWriter

    text = "Encrypted handbook on exam proctoring." if user_password else "Open handbook on exam scheduling."
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _letters(number: int) -> str:
    return "".join(chr(ord("a") + int(digit)) for digit in str(number))


def many_pages_pdf(pages: int) -> bytes:
    """Case 6: a page count far over the limit, each page with its own words (no running header)."""
    return _pages_pdf(
        [_stream(_text_ops(b"Chapter %s on learning design." % _letters(n).encode())) for n in range(pages)]
    )


def slow_pdf(pages: int = 2000) -> bytes:
    """Case 3: a legitimate but slow document: every page draws 3,000 words one by one (about 0.2 s a page)."""
    ops = b"".join(b"BT /F1 9 Tf %d %d Td (w%d) Tj ET\n" % (10 + i % 60 * 9, 10 + i // 60 * 9, i) for i in range(3000))
    kids = b" ".join(b"%d 0 R" % (5 + i) for i in range(pages))
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        b"/Contents 4 0 R >>"
    )
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            _stream(ops),
            *[page] * pages,
        ]
    )


def image_only_pdf() -> bytes:
    """Case 7: a 'scan': one page that only draws an image."""
    pixels = bytes((x * y) % 256 for y in range(32) for x in range(32))
    image = _stream(
        pixels, b"/Type /XObject /Subtype /Image /Width 32 /Height 32 /ColorSpace /DeviceGray /BitsPerComponent 8 "
    )
    pdf = _pages_pdf([_stream(b"q 400 0 0 400 100 200 cm /Im1 Do Q")], extra=[image])
    return pdf.replace(b"/Resources << /Font << /F1 3 0 R >> >>", b"/Resources << /XObject << /Im1 6 0 R >> >>")


def nul_pdf() -> bytes:
    """Case 9: a text layer with NUL bytes in it."""
    return _pages_pdf([_stream(_text_ops(b"Null bytes\\000 inside\\000 a syllabus about statistics."))])


def bidi_pdf() -> bytes:
    """Case 9: a text layer with a bidi override around a word, in three scripts."""
    return make_pdf(["Peer review \u202eof\u202c essays in Взаимное оценивание and αξιολόγηση."])


# --- DOCX packages rewritten member by member -------------------------------------------------------------------


def _repack(docx: bytes, replace: dict[str, bytes] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    replace = replace or {}
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info)))
        for name, data in (add or {}).items():
            target.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_bomb_docx() -> bytes:
    """Case 8: a real DOCX with a 32 MiB member of zeros that compresses a thousandfold."""
    return _repack(make_docx([("p", "A zipped bomb.")]), add={"word/media/filler.bin": bytes(32 << 20)})


def billion_laughs_docx(encoding: str = "utf-8") -> bytes:
    """Case 8: word/document.xml with nine levels of entities that expand tenfold each."""
    docx = make_docx([("p", "LAUGHS")])
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        xml = archive.read("word/document.xml").decode()
    entities = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    _declaration, body = xml.split("?>", 1)
    body = body.replace("LAUGHS", "&lol9;")
    xml = f'<?xml version="1.0" encoding="{encoding}" standalone="yes"?><!DOCTYPE w:document [{entities}]>{body}'
    return _repack(docx, replace={"word/document.xml": xml.encode(encoding)})


def traversal_docx() -> bytes:
    """Case 8: a DOCX with a member named ../../evil.txt (and one with an absolute name)."""
    docx = make_docx([("p", "Zip slip attempts about open textbooks.")])
    return _repack(docx, add={"../../evil.txt": b"owned", "/tmp/evil-absolute.txt": b"owned"})


# --- The batch: every hostile file plus two good documents, built once ------------------------------------------


@dataclass(frozen=True)
class Case:
    """A file of the batch and what must become of it."""

    name: str
    make: Callable[[], bytes]
    status: str
    reason: str | None = None
    message: str = ""  # a piece of the failure message


CASES = [
    Case("good.pdf", lambda: make_pdf(GOOD_PDF_PAGES), INDEXED),
    Case("good.docx", lambda: make_docx([("h1", "Remote labs"), ("p", GOOD_DOCX_TEXT)]), INDEXED),
    Case("bomb.pdf", bomb_pdf, FAILED, RESOURCE_LIMIT, "limit"),
    Case("circular-prev.pdf", circular_prev_pdf, INDEXED),
    Case("outline-cycle.pdf", outline_cycle_pdf, INDEXED),
    Case("inline-image-without-ei.pdf", inline_image_without_ei_pdf, INDEXED),
    Case("comment-at-eof.pdf", lambda: junk_after_eof_pdf(b"%"), INDEXED),
    Case("comments-after-eof.pdf", lambda: junk_after_eof_pdf(b"%junk\n" * 5000), INDEXED),
    Case(
        "binary-after-eof.pdf",
        lambda: junk_after_eof_pdf(bytes(range(256)) * 40 + b"%"),
        FAILED,
        UNREADABLE,
        "startxref",
    ),
    Case("user-password.pdf", lambda: encrypted_pdf("s3cret"), FAILED, ENCRYPTED, "password"),
    Case("empty-user-password.pdf", lambda: encrypted_pdf(""), INDEXED),
    Case("header-only.pdf", lambda: b"%PDF-", FAILED, UNREADABLE),
    Case("truncated.pdf", lambda: make_pdf(["A download cut short."])[:600], FAILED, UNREADABLE),
    Case("3000-pages.pdf", lambda: many_pages_pdf(3000), INDEXED),
    Case("scan.pdf", image_only_pdf, FAILED, NO_TEXT, "no text"),
    Case("zip-bomb.docx", zip_bomb_docx, FAILED, RESOURCE_LIMIT, "expands to"),
    Case("billion-laughs.docx", billion_laughs_docx, FAILED, UNREADABLE, "XML with a DOCTYPE is refused"),
    Case("zip-slip.docx", traversal_docx, INDEXED),
    Case("hostile.txt", lambda: HOSTILE_TEXT.encode("utf-8", "surrogatepass"), INDEXED),
    Case("hostile-utf16.txt", lambda: ("\x00" + HOSTILE_TEXT).encode("utf-16", "surrogatepass"), INDEXED),
    Case("nul.pdf", nul_pdf, INDEXED),
    Case("bidi.pdf", bidi_pdf, INDEXED),
]


@dataclass
class Batch:
    """The outcome of building the whole batch once."""

    indexer: Indexer
    documents: dict[str, Document]
    seconds: float
    parent_peak_growth_mb: float
    root: Path  # holds the data directory and the working directory of the build


def _memory_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM starts again from the current RSS
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    root = tmp_path_factory.mktemp("hostile")
    workdir = root / "work" / "dir"
    workdir.mkdir(parents=True)
    settings = IndexerSettings(
        data_dir=root / "data",
        model="hash-256",
        passage_max_tokens=64,
        max_pages=MAX_PAGES,
        extract_timeout_seconds=20,
        extract_cpu_seconds=20,
        extract_memory_mb=512,
        ocr=False,
        multilingual_model=None,
    )
    indexer = Indexer(settings, HashEmbedder(256))
    # The good documents (and a Chinese text) go first, in a build of their own: what the indexer loads once
    # (the language identifier, the Chinese word list) is loaded before the hostile batch is measured.
    good, hostile = CASES[:2], CASES[2:]
    ids = {case.name: indexer.ingest(case.make(), case.name).document.id for case in good}
    indexer.ingest("预热：中文分词词典。Warm-up text.".encode(), "warm-up.txt")
    indexer.build()
    files = [(case.name, case.make()) for case in hostile]
    ids |= {name: indexer.ingest(data, name).document.id for name, data in files}
    del files
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workdir)  # a worker that wrote ../../evil.txt would write it into `root`
        peak_known = _reset_peak_rss()
        before = _memory_kb("VmRSS")
        started = time.perf_counter()
        indexer.build()
        seconds = time.perf_counter() - started
        after = _memory_kb("VmHWM" if peak_known else "VmRSS")
    documents = {name: indexer.catalog.get_document(document_id) for name, document_id in ids.items()}
    yield Batch(indexer, {k: v for k, v in documents.items() if v is not None}, seconds, (after - before) / 1024, root)
    indexer.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_hostile_document_ends_in_its_documented_status(batch: Batch, case: Case) -> None:
    """Every file of the mixed batch has its status and reason; none took near the extraction timeout."""
    document = batch.documents[case.name]
    assert (document.status, document.reason) == (case.status, case.reason), document.message
    assert case.message.lower() in (document.message or "").lower()
    assert document.extract_seconds is not None and document.extract_seconds < 10
    if case.status == INDEXED:
        assert document.passage_count > 0
    else:
        assert document.passage_count == 0 and batch.indexer.catalog.passages_of(document.id) == []


def test_the_good_documents_are_searchable_after_the_hostile_batch(batch: Batch) -> None:
    """The two good documents are the top hits for their own words."""
    reader = open_published(batch.indexer.data_dir)
    assert reader is not None
    try:
        searcher = Searcher(reader, batch.indexer.embedder)
        for name, query in [
            ("good.pdf", "calibrated peer review analytic rubric anonymous submissions"),
            ("good.docx", "remote laboratories oscilloscopes engineering students network"),
        ]:
            hits = searcher.search(query, k=3).hits
            assert hits and hits[0].passage.document_id == batch.documents[name].id
    finally:
        reader.close()


def test_the_batch_is_bounded_in_time_and_in_the_parents_memory(batch: Batch) -> None:
    """Decompression and parsing happen in the worker: the indexer's own peak memory barely moves."""
    assert batch.seconds < 60
    assert batch.parent_peak_growth_mb < 50, f"the parent grew by {batch.parent_peak_growth_mb:.0f} MB"


def test_a_page_count_over_the_limit_is_indexed_up_to_it_and_marked_truncated(batch: Batch) -> None:
    """Case 6: 3,000 pages, max_pages 50: pages 1..50 indexed, truncated, the real page count kept."""
    document = batch.documents["3000-pages.pdf"]
    assert document.truncated and document.page_count == 3000
    pages = {p.page for p in batch.indexer.catalog.passages_of(document.id)}
    assert pages == set(range(1, MAX_PAGES + 1))


def test_broken_structures_still_give_the_readable_pages(batch: Batch) -> None:
    """Case 2: the page before an endless inline image is kept; junk after %%EOF loses nothing."""
    passages = batch.indexer.catalog.passages_of(batch.documents["inline-image-without-ei.pdf"].id)
    assert [(p.page, p.text) for p in passages] == [(1, "The page before the broken image on tutoring.")]
    passages = batch.indexer.catalog.passages_of(batch.documents["comments-after-eof.pdf"].id)
    assert [p.text for p in passages] == ["Trailing junk about accessibility captions."]


def test_hostile_text_is_normalised_and_stores_as_json_and_sqlite(batch: Batch) -> None:
    """Case 9: NUL bytes, lone surrogates and bidi controls are gone, scripts kept, NFC; JSON and SQLite take it."""
    texts = {}
    for name in ("hostile.txt", "hostile-utf16.txt", "nul.pdf", "bidi.pdf"):
        passages = batch.indexer.catalog.passages_of(batch.documents[name].id)
        texts[name] = "\n".join(p.text for p in passages)
    assert texts["hostile.txt"].replace("\n\n", "\n") == HOSTILE_TEXT_CLEAN
    assert texts["hostile-utf16.txt"].replace("\n\n", "\n") == HOSTILE_TEXT_CLEAN
    assert texts["nul.pdf"] == "Null bytes inside a syllabus about statistics."
    assert texts["bidi.pdf"] == "Peer review of essays in Взаимное оценивание and αξιολόγηση."
    for text in texts.values():
        assert unicodedata.is_normalized("NFC", text)
        assert not any(c in text for c in "\x00\u202e\u202c\u2066\u2069") and "\ud800" not in text
        assert json.loads(json.dumps(text, ensure_ascii=False)) == text
        with sqlite3.connect(":memory:") as db:
            assert db.execute("SELECT ?", (text,)).fetchone() == (text,)


def test_member_names_with_dot_dot_write_nothing_anywhere(batch: Batch) -> None:
    """Case 8: ../../evil.txt and /tmp/evil-absolute.txt are never extracted to disk; the document is indexed."""
    assert not [p for p in batch.root.rglob("*evil*")]
    assert not [p for p in (batch.root / "work" / "dir").iterdir()]
    assert not Path("/tmp/evil-absolute.txt").exists()
    text = " ".join(p.text for p in batch.indexer.catalog.passages_of(batch.documents["zip-slip.docx"].id))
    assert text == "Zip slip attempts about open textbooks."


def test_zero_bytes_are_refused_and_the_same_bytes_twice_are_one_document(batch: Batch) -> None:
    """Case 5 (zero bytes: refused at ingest) and case 14 (a hostile file uploaded again: the same document)."""
    with pytest.raises(IngestError) as empty:
        batch.indexer.ingest(b"", "empty.pdf")
    assert empty.value.code == "empty_file"
    again = batch.indexer.ingest(bomb_pdf(), "bomb-again.pdf")
    assert again.duplicate_of == batch.documents["bomb.pdf"].id


# --- Archive checks, in process --------------------------------------------------------------------------------


def test_a_doctype_is_refused_in_any_encoding_but_an_svg_image_may_have_one() -> None:
    """A UTF-16 billion laughs is refused too; an SVG icon (kept as bytes, never parsed) does not refuse a DOCX."""
    with pytest.raises(ExtractionError) as caught:
        extract_document(billion_laughs_docx("utf-16"), "laughs16.docx")
    assert (caught.value.reason, caught.value.message) == (
        UNREADABLE,
        "XML with a DOCTYPE is refused (word/document.xml)",
    )
    svg = b'<?xml version="1.0"?><!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x.dtd"><svg/>'
    docx = make_docx([("p", "An icon inside.")])
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        types = archive.read("[Content_Types].xml")
    types = types.replace(b"<Default ", b'<Default Extension="svg" ContentType="image/svg+xml"/><Default ', 1)
    docx = _repack(docx, replace={"[Content_Types].xml": types}, add={"word/media/icon.svg": svg})
    assert extract_document(docx, "icon.docx").sections[0].text == "An icon inside."


def test_archive_limits_come_from_the_extraction_limits() -> None:
    """The member count and expanded size limits are settings, not constants."""
    docx = make_docx([("p", "Small.")])
    with pytest.raises(ExtractionError) as caught:
        extract_document(docx, "small.docx", ExtractionLimits(archive_max_members=3))
    assert caught.value.reason == RESOURCE_LIMIT
    with pytest.raises(ExtractionError) as caught:
        extract_document(docx, "small.docx", ExtractionLimits(archive_max_expanded_bytes=1000))
    assert caught.value.reason == RESOURCE_LIMIT
    assert extract_document(docx, "small.docx").sections[0].text == "Small."


# --- The sandbox itself ----------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_document_over_the_wall_clock_limit_is_killed_and_the_worker_replaced() -> None:
    """Case 3: a 2,000-page document with a 0.5 s timeout: `timeout`, the worker killed, the next one fine."""
    with ExtractionSandbox(SandboxLimits(timeout_seconds=0.5, cpu_seconds=60, memory_mb=1024)) as sandbox:
        assert sandbox.extract(b"Warm up.", "warm.txt").sections[0].text == "Warm up."
        (first,) = sandbox.worker_pids()
        started = time.perf_counter()
        with pytest.raises(ExtractionError) as caught:
            sandbox.extract(slow_pdf(), "slow.pdf")
        assert time.perf_counter() - started < 5
        assert caught.value.reason == TIMEOUT and "wall-clock" in caught.value.message
        assert sandbox.worker_pids() == []
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        assert sandbox.extract(make_pdf(["Next document."]), "next.pdf").sections[0].text == "Next document."
        assert sandbox.worker_pids() != [first]


@pytest.mark.timeout(60)
def test_a_document_over_the_cpu_limit_is_stopped_by_sigxcpu() -> None:
    """Case 3: a 1 s CPU limit (and a generous wall clock): the kernel stops the worker; reason `timeout`."""
    with ExtractionSandbox(SandboxLimits(timeout_seconds=30, cpu_seconds=1, memory_mb=1024)) as sandbox:
        started = time.perf_counter()
        with pytest.raises(ExtractionError) as caught:
            sandbox.extract(slow_pdf(), "slow.pdf")
        assert time.perf_counter() - started < 15
        assert caught.value.reason == TIMEOUT and "CPU" in caught.value.message
        assert sandbox.extract(b"Still working.", "ok.txt").sections[0].text == "Still working."


@pytest.mark.timeout(60)
def test_a_document_over_the_memory_limit_is_resource_limit() -> None:
    """Case 3: a 64 MB text needs several times that to decode and clean; with 256 MiB it is `resource_limit`."""
    data = b"Peer assessment works when rubrics are clear and examples are graded. " * (64 << 20 >> 6)
    with ExtractionSandbox(SandboxLimits(timeout_seconds=30, cpu_seconds=30, memory_mb=256)) as sandbox:
        with pytest.raises(ExtractionError) as caught:
            sandbox.extract(data, "huge.txt")
        assert caught.value.reason == RESOURCE_LIMIT and "memory" in caught.value.message
        assert sandbox.extract(b"Small again.", "ok.txt").sections[0].text == "Small again."


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("signal_number", "reason", "words"),
    [(signal.SIGSEGV, UNREADABLE, "crashed (SIGSEGV)"), (signal.SIGKILL, RESOURCE_LIMIT, "killed")],
    ids=["segfault", "oom-killer"],
)
def test_a_worker_that_dies_mid_document_fails_that_document_only(signal_number: int, reason: str, words: str) -> None:
    """A crash in C (SIGSEGV) is `unreadable` with the signal; a kill from outside (the OOM killer) `resource_limit`."""
    with ExtractionSandbox(SandboxLimits(timeout_seconds=30, cpu_seconds=30, memory_mb=1024)) as sandbox:
        sandbox.extract(b"Warm up.", "warm.txt")
        (pid,) = sandbox.worker_pids()
        outcome: list[BaseException] = []

        def extract_slowly() -> None:
            try:
                sandbox.extract(slow_pdf(), "slow.pdf")
            except ExtractionError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=extract_slowly)
        thread.start()
        time.sleep(0.7)  # well into the first pages
        os.kill(pid, signal_number)
        thread.join(20)
        assert len(outcome) == 1 and isinstance(outcome[0], ExtractionError)
        assert outcome[0].reason == reason and words in outcome[0].message
        assert sandbox.extract(b"Next one.", "ok.txt").sections[0].text == "Next one."


@pytest.mark.parametrize(
    ("returncode", "reason", "words"),
    [
        (-signal.SIGXCPU, TIMEOUT, "CPU"),
        (-signal.SIGKILL, RESOURCE_LIMIT, "memory"),
        (-signal.SIGABRT, UNREADABLE, "SIGABRT"),
        (1, UNREADABLE, "status 1"),
    ],
)
def test_exit_status_of_a_dead_worker_maps_to_a_reason(returncode: int, reason: str, words: str) -> None:
    """How a worker died decides the document's reason."""
    found, message = exit_outcome(returncode, SandboxLimits())
    assert found == reason and words in message


@pytest.mark.timeout(60)
def test_extract_many_on_two_workers_keeps_the_order_and_isolates_failures() -> None:
    """Parallel extraction yields each tag's outcome in input order; a timeout on one costs only that one."""
    limits = ExtractionLimits()
    tasks = [
        ("a", b"First text.", "a.txt", limits),
        ("slow", slow_pdf(), "slow.pdf", limits),
        ("b", make_pdf(["Second text."]), "b.pdf", limits),
        ("binary", bytes(range(256)) * 4, "x.bin", limits),
        ("c", b"Third text.", "c.txt", limits),
    ]
    with ExtractionSandbox(SandboxLimits(timeout_seconds=1, cpu_seconds=30), workers=2) as sandbox:
        results = list(sandbox.extract_many(iter(tasks)))
    assert [tag for tag, _outcome, _seconds in results] == ["a", "slow", "b", "binary", "c"]
    summary = [
        outcome.reason if isinstance(outcome, ExtractionError) else outcome.sections[0].text
        for _tag, outcome, _seconds in results
    ]
    assert summary == ["First text.", TIMEOUT, "Second text.", "unsupported_type", "Third text."]


def test_a_build_with_two_workers_records_every_document_in_order(indexer: Indexer) -> None:
    """extract_workers=2: the same statuses as one by one."""
    indexer.settings = indexer.settings.model_copy(update={"extract_workers": 2})
    good = [indexer.ingest(f"Document {_letters(n)} on open badges.".encode(), f"{n}.txt") for n in range(4)]
    bad = indexer.ingest(b"%PDF-", "bad.pdf")
    report = indexer.build()
    assert report.documents_extracted == 5 and report.documents_indexed == 4
    assert [f.document_id for f in report.failures] == [bad.document.id]
    assert all(indexer.catalog.get_document(r.document.id).status == INDEXED for r in good)  # type: ignore[union-attr]
