"""Extraction of every supported format against documents made in the test, whose text is known exactly."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest

from indexer.extract import (
    Extraction,
    ExtractionError,
    ExtractionLimits,
    extract_document,
    sniff_media_type,
)
from indexer.extract.model import (
    BROKEN_TEXT_ENCODING,
    DOCX,
    ENCRYPTED,
    HTML,
    MARKDOWN,
    NO_TEXT,
    PDF,
    PPTX,
    TEXT,
    UNREADABLE,
    UNSUPPORTED_TYPE,
)
from indexer.extract.pdf import looks_mis_encoded
from indexer.text import join_lines, normalise_text
from tests.helpers import FONT, make_docx, make_pdf, make_pptx

CJK_FONT = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")

PDF_PAGES = [
    "Apples ripen in the orchard during the first week of autumn.",
    "Bananas are shipped green and ripen in warm storage rooms.",
    "Cherries must be picked by hand before the summer rains arrive.",
]
# Long enough to wrap over several lines on an A4 page: the extractor must join the lines with single spaces.
LONG_PARAGRAPH = (
    "Peer assessment works best when learners first calibrate their judgement on three sample answers "
    "that staff have already graded, and then grade four anonymous submissions with an analytic rubric "
    "whose criteria each come with a short description of what a strong, an average and a weak answer "
    "look like in practice."
)


def _pdf_with_user_password(user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(PDF_PAGES))))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _reason(data: bytes, filename: str = "") -> str:
    with pytest.raises(ExtractionError) as caught:
        extract_document(data, filename)
    return caught.value.reason


# --- PDF --------------------------------------------------------------------------------------------------


def test_pdf_one_section_per_page_with_page_numbers_and_title() -> None:
    """Each page's sentence comes back alone, on its own page number; the title comes from the Info dict."""
    extraction = extract_document(make_pdf(PDF_PAGES, title="Fruit Logistics"), "fruit.pdf")
    assert extraction.media_type == PDF
    assert extraction.title == "Fruit Logistics"
    assert extraction.page_count == 3
    assert not extraction.truncated
    assert extraction.warnings == ()
    assert [(s.page, s.text, s.heading) for s in extraction.sections] == [
        (1, PDF_PAGES[0], ()),
        (2, PDF_PAGES[1], ()),
        (3, PDF_PAGES[2], ()),
    ]


def test_pdf_wrapped_lines_are_joined_into_the_original_paragraph() -> None:
    """A paragraph that wraps over several PDF lines is extracted as the exact source sentence."""
    extraction = extract_document(make_pdf([LONG_PARAGRAPH, "Second page."]))
    assert extraction.sections[0].text == LONG_PARAGRAPH
    assert extraction.sections[1].page == 2


def test_pdf_blank_page_keeps_the_numbering_of_the_others() -> None:
    """A page without text yields no section, and the pages after it keep their real numbers."""
    extraction = extract_document(make_pdf([PDF_PAGES[0], "", PDF_PAGES[2]]), limits=ExtractionLimits(ocr=False))
    assert extraction.page_count == 3
    assert [(s.page, s.text) for s in extraction.sections] == [(1, PDF_PAGES[0]), (3, PDF_PAGES[2])]
    assert extraction.empty_pages == (2,)


@pytest.mark.skipif(not (CJK_FONT.exists() and FONT.exists()), reason="no CJK font (fonts-droid-fallback)")
def test_pdf_chinese_lines_wrapped_between_characters_join_without_spaces() -> None:
    """Chinese wraps between any two characters (digits and fullwidth punctuation too): no spaces are added."""
    from fpdf import FPDF
    from fpdf.enums import WrapMode

    sentence = "我们在两个教学班（共236名学生）中开展了翻转课堂改革试点，每周两次课，每次95分钟。" * 4
    pdf = FPDF()
    pdf.add_font("cjk", fname=str(CJK_FONT))
    pdf.add_font("latin", fname=str(FONT))  # the CJK font has no digits
    pdf.set_fallback_fonts(["latin"])
    pdf.set_font("cjk", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 7, sentence, wrapmode=WrapMode.CHAR)
    extraction = extract_document(bytes(pdf.output()))
    assert extraction.sections[0].text == sentence


def test_pdf_encrypted_with_a_user_password_is_refused_as_encrypted() -> None:
    """Without the password the text cannot be read: reason 'encrypted'."""
    assert _reason(_pdf_with_user_password("s3cret")) == ENCRYPTED


def test_pdf_encrypted_with_an_empty_user_password_is_read() -> None:
    """Owner-password-only encryption (print/copy restrictions) still gives the text of every page."""
    extraction = extract_document(_pdf_with_user_password(""))
    assert [(s.page, s.text) for s in extraction.sections] == [(i + 1, t) for i, t in enumerate(PDF_PAGES)]


@pytest.mark.parametrize(
    "data",
    [b"%PDF-", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog"],
    ids=["header-only", "no-xref"],
)
def test_pdf_that_is_only_a_header_is_unreadable(data: bytes) -> None:
    """Bytes that start like a PDF but hold no document: 'unreadable'."""
    assert sniff_media_type(data) == PDF
    assert _reason(data, "x.pdf") == UNREADABLE


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_pdf_is_unreadable(keep: float) -> None:
    """A download cut short (the cross-reference table and trailer are missing) is 'unreadable'."""
    data = make_pdf(PDF_PAGES)
    assert _reason(data[: int(len(data) * keep)], "x.pdf") == UNREADABLE


def test_pdf_max_pages_limit_reads_the_first_pages_and_marks_truncated() -> None:
    """max_pages=2 on three pages: the first two pages, truncated, page_count still the real one."""
    extraction = extract_document(make_pdf(PDF_PAGES), limits=ExtractionLimits(max_pages=2))
    assert [(s.page, s.text) for s in extraction.sections] == [(1, PDF_PAGES[0]), (2, PDF_PAGES[1])]
    assert extraction.truncated
    assert extraction.page_count == 3


def test_pdf_max_chars_limit_cuts_inside_a_page() -> None:
    """The character budget is honoured exactly: page 1 whole, page 2 cut, page 3 not read."""
    limit = len(PDF_PAGES[0]) + 10
    extraction = extract_document(make_pdf(PDF_PAGES), limits=ExtractionLimits(max_chars=limit))
    assert extraction.char_count == limit
    assert [(s.page, s.text) for s in extraction.sections] == [(1, PDF_PAGES[0]), (2, PDF_PAGES[1][:10])]
    assert extraction.truncated


def test_pdf_same_short_stamp_on_every_page_is_no_text() -> None:
    """A scan whose only text is a scanner app's stamp repeated on every page has no text to index."""
    stamp = "Scanned with PocketScanner"
    with pytest.raises(ExtractionError) as caught:
        extract_document(make_pdf([stamp] * 4), limits=ExtractionLimits(ocr=False))  # with OCR: test_pdf_pages
    assert caught.value.reason == NO_TEXT
    assert stamp in caught.value.message


def test_pdf_repeated_short_text_with_real_content_is_kept() -> None:
    """The same short line on every page is only a stamp when the pages hold nothing else."""
    extraction = extract_document(make_pdf([f"Draft\n\n{t}" for t in PDF_PAGES]))
    assert [s.page for s in extraction.sections] == [1, 2, 3]
    assert PDF_PAGES[1] in extraction.sections[1].text


def test_single_page_pdf_with_short_text_is_not_a_stamp() -> None:
    """One short page is a short document, not a stamp: it is extracted."""
    assert extract_document(make_pdf(["Exam timetable"])).sections[0].text == "Exam timetable"


# --- Mis-encoded text layers ---------------------------------------------------------------------------------


def test_mis_encoded_text_with_digits_as_rare_ideographs_is_detected() -> None:
    """Digits and ASCII mapped to rare ideographs (圱 圲 圮: a broken ToUnicode map) are flagged."""
    broken = "圲圮圱 链表 圮 圮 圮 圲 圲圮圲 双端队列 圳 圳 详细设计 圴 坳 圽 坬坩坮坫坌坩坳坴在圩 创建一个链表" * 3
    assert looks_mis_encoded(broken)


def test_character_ids_read_as_code_points_are_detected() -> None:
    """Japanese glyph ids read as code points give words that mix unrelated scripts; that is flagged."""
    broken = "มߋͷ࡞ มߋΛϨϏϡʔ͠ίϛοτૢ࡞ϩάΛ ΔϑΝΠϧΛҰཡͰදࣔ͠·͢ εςʔδϯάͱޙ࠷ͷϑΝΠϧ ίϚϯυϥΠϯͷग़ྗΛݟ " * 3
    assert looks_mis_encoded(broken)


@pytest.mark.parametrize(
    "text",
    [
        "大学物理课程中基于雨课堂的翻转课堂教学实践，每周两次课，每次95分钟，共236名学生。" * 5,
        "Gitはオープンソースとして配布されているバージョン管理システムです。変更をレビューしコミット操作ログを作成します。"
        * 5,
        "한국어 텍스트는 단어 사이에 공백을 씁니다. 학습자는 동료 평가를 통해 배웁니다." * 5,
        "การจัดการเรียนการสอนแบบห้องเรียนกลับด้าน ในรายวิชาฟิสิกส์มหาวิทยาลัย " * 5,
        "Взаимное оценивание в массовом инженерном онлайн-курсе, Peer Assessment at Scale. " * 5,
        "设置参数α和β，概率π与转移矩阵A，其中ψ𝑡为前向变量；①一致关系②次范畴化 " * 5,
        "The Stroop effect: English red, Chinese 红色, Japanese 赤, Korean 빨간색, Greek κόκκινο. " * 5,
    ],
    ids=["zh", "ja", "ko", "th", "ru-en", "zh-maths", "multilingual"],
)
def test_real_text_in_many_scripts_is_not_flagged(text: str) -> None:
    """Ordinary text in Chinese, Japanese, Korean, Thai, Russian, maths and mixed languages is not flagged."""
    assert not looks_mis_encoded(text)


# --- DOCX ---------------------------------------------------------------------------------------------------

DOCX_BLOCKS = [
    ("h1", "Course design"),
    ("p", "Short videos of at most eight minutes keep learners engaged."),
    ("h2", "Rubrics"),
    ("li", "Describe every level of every criterion."),
    ("li", "Show one graded example per level."),
    ("table", "Week|Hours|Credits"),
    ("table", "1|2|2"),
    ("h1", "Evaluation"),
    ("p", "Completion rose from 9 to 14 percent."),
]


def test_docx_sections_follow_headings_with_lists_and_tables() -> None:
    """Headings split sections and set the heading path; list items are marked, table rows keep every cell."""
    extraction = extract_document(make_docx(DOCX_BLOCKS, title="Course Handbook"), "handbook.docx")
    assert extraction.media_type == DOCX
    assert extraction.title == "Course Handbook"
    assert extraction.page_count is None
    assert [(s.heading, s.text, s.page) for s in extraction.sections] == [
        (
            ("Course design",),
            "Course design\n\nShort videos of at most eight minutes keep learners engaged.",
            None,
        ),
        (
            ("Course design", "Rubrics"),
            "Rubrics\n\n- Describe every level of every criterion.\n\n- Show one graded example per level."
            "\n\nWeek | Hours | Credits\n\n1 | 2 | 2",
            None,
        ),
        (("Evaluation",), "Evaluation\n\nCompletion rose from 9 to 14 percent.", None),
    ]


def test_docx_title_paragraph_heads_the_heading_path() -> None:
    """A Title-styled paragraph is the document title and the first level of every heading path."""
    data = make_docx([("h0", "Flipped Calculus"), *DOCX_BLOCKS])
    extraction = extract_document(data, "calculus.docx")
    assert extraction.title == "Flipped Calculus"
    assert [s.heading for s in extraction.sections] == [
        ("Flipped Calculus",),
        ("Flipped Calculus", "Course design"),
        ("Flipped Calculus", "Course design", "Rubrics"),
        ("Flipped Calculus", "Evaluation"),
    ]


def test_docx_merged_table_cell_is_read_once() -> None:
    """A cell merged over two columns appears once in its row."""
    import docx

    document = docx.Document()
    table = document.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Merged"
    table.cell(0, 2).text = "Other"
    out = io.BytesIO()
    document.save(out)
    assert [s.text for s in extract_document(out.getvalue()).sections] == ["Merged | Other"]


def test_docx_limit_reached_exactly_at_a_paragraph_end_adds_nothing() -> None:
    """When the budget ends exactly at a paragraph, the section ends there (no empty paragraph after it)."""
    extraction = extract_document(make_docx(DOCX_BLOCKS), limits=ExtractionLimits(max_chars=len("Course design")))
    assert [s.text for s in extraction.sections] == ["Course design"]
    assert extraction.truncated


def test_docx_without_text_is_no_text() -> None:
    """An empty document: 'no_text'."""
    assert _reason(make_docx([])) == NO_TEXT


def test_docx_max_chars_limit() -> None:
    """The character budget (paragraph text, not the blank lines between) is honoured; marked truncated."""
    extraction = extract_document(make_docx(DOCX_BLOCKS), limits=ExtractionLimits(max_chars=40))
    assert [s.text for s in extraction.sections] == ["Course design\n\nShort videos of at most eig"]
    assert extraction.truncated


# --- PPTX ---------------------------------------------------------------------------------------------------

SLIDES = [
    ("Designing Remote Labs", ["A workshop for engineering instructors"], "Welcome everyone to the workshop."),
    ("Three types of online laboratory", ["Virtual lab: a simulation", "Remote lab: real equipment"], ""),
    ("What we measured", ["Pass rates rose by 6 points"], "Mention the control group of 241 students."),
]


def test_pptx_one_section_per_slide_with_title_body_and_notes() -> None:
    """Slide n is page n, headed by its title; body text and speaker notes follow in order."""
    extraction = extract_document(make_pptx(SLIDES), "labs.pptx")
    assert extraction.media_type == PPTX
    assert extraction.page_count == 3
    assert extraction.title == "Designing Remote Labs"
    assert [(s.page, s.heading, s.text) for s in extraction.sections] == [
        (
            1,
            ("Designing Remote Labs",),
            "Designing Remote Labs\n\nA workshop for engineering instructors\n\nWelcome everyone to the workshop.",
        ),
        (
            2,
            ("Three types of online laboratory",),
            "Three types of online laboratory\n\nVirtual lab: a simulation\n\nRemote lab: real equipment",
        ),
        (
            3,
            ("What we measured",),
            "What we measured\n\nPass rates rose by 6 points\n\nMention the control group of 241 students.",
        ),
    ]


def test_pptx_text_inside_grouped_shapes_is_extracted() -> None:
    """Text boxes inside a group shape are read too."""
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    slide.shapes.title.text = "Grouped diagram"
    group = slide.shapes.add_group_shape()
    group.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1)).text_frame.text = "Sensor feeds the PLC."
    out = io.BytesIO()
    presentation.save(out)
    section = extract_document(out.getvalue()).sections[0]
    assert (section.page, section.heading, section.text) == (
        1,
        ("Grouped diagram",),
        "Grouped diagram\n\nSensor feeds the PLC.",
    )


# --- HTML ---------------------------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>  Peer Review   Guide | Example University </title>
<style>body { color: #333 } .STYLE_TEXT { display: none }</style>
<script>var tracking = "SCRIPT_TEXT";</script>
</head>
<body>
<header><nav><ul><li><a href="/">NAV_HOME</a><li><a href="/about">NAV_ABOUT</a></ul></nav></header>
<aside>ASIDE_TEXT</aside>
<main>
<h1>Peer Review Guide</h1>
<p>Peer review helps learners <em>reflect</em> on <a href="/x">their own</a> work.</p>
<h2>Rubric <span>design</span></h2>
<p>Each criterion has four levels &amp; clear descriptors.
<ul><li>Be specific.<li>Be kind.</ul>
<svg><title>SVG_TITLE</title><text>SVG_TEXT</text></svg>
<h3>Calibration</h3>
<p>Learners grade three samples first.<br>Then they grade peers.</p>
<h2>Results</h2>
<p>Agreement reached 87 percent.</p>
</main>
<footer><p>FOOTER_TEXT 2024</p></footer>
<script>console.log("MORE_SCRIPT")</script>
</body>
</html>
"""


def test_html_main_content_with_heading_path_and_no_boilerplate() -> None:
    """Only <main> is read: headings nest, inline tags stay inside their paragraph, boilerplate is dropped."""
    extraction = extract_document(HTML_PAGE.encode(), "guide.html")
    assert extraction.media_type == HTML
    assert extraction.title == "Peer Review Guide | Example University"
    assert [(s.heading, s.text, s.page) for s in extraction.sections] == [
        (("Peer Review Guide",), "Peer Review Guide\n\nPeer review helps learners reflect on their own work.", None),
        (
            ("Peer Review Guide", "Rubric design"),
            "Rubric design\n\nEach criterion has four levels & clear descriptors.\n\nBe specific.\n\nBe kind.",
            None,
        ),
        (
            ("Peer Review Guide", "Rubric design", "Calibration"),
            "Calibration\n\nLearners grade three samples first. Then they grade peers.",
            None,
        ),
        (("Peer Review Guide", "Results"), "Results\n\nAgreement reached 87 percent.", None),
    ]
    text = "\n".join(s.text for s in extraction.sections)
    for boilerplate in ("NAV_", "SCRIPT", "STYLE_TEXT", "FOOTER_TEXT", "ASIDE_TEXT", "SVG_", "tracking"):
        assert boilerplate not in text


def test_html_without_main_reads_the_body_but_not_boilerplate() -> None:
    """With no <main>/<article>, the whole body is content; an unclosed <li> in the nav does not swallow it."""
    page = (
        "<html><head><title>Syllabus</title></head><body><nav><ul><li>Home<li>About</ul></nav>"
        "<h1>Week 1</h1><p>Read chapter one.<p>Watch the <b>first</b> video.</body></html>"
    )
    extraction = extract_document(page.encode())
    assert [(s.heading, s.text) for s in extraction.sections] == [
        (("Week 1",), "Week 1\n\nRead chapter one.\n\nWatch the first video.")
    ]
    assert extraction.title == "Syllabus"


def test_html_title_falls_back_to_the_first_heading() -> None:
    """A page without <title> takes its first heading as the title."""
    extraction = extract_document(b"<html><body><main><h2>Lab safety</h2><p>Wear goggles.</p></main></body></html>")
    assert extraction.title == "Lab safety"


def test_html_with_only_boilerplate_is_no_text() -> None:
    """A page whose only text is navigation and scripts has no text to index."""
    assert _reason(b"<html><body><nav>Home</nav><script>x()</script><footer>(c)</footer></body></html>") == NO_TEXT


# --- Markdown -----------------------------------------------------------------------------------------------

MARKDOWN_DOC = """# Flipped Classroom Handbook

Start with a [short video](https://example.org/v) and **one question** about *the key idea*.
Keep `my_var_name` and snake_case names as they are.

## Before class

Watch the _short_ videos ![diagram of the cycle](cycle.png) first.

### Quiz

Five questions, __auto-graded__.

## In class

Discuss in groups of four.

```
# not a heading inside a code fence
```
"""


def test_markdown_nested_headings_with_links_and_emphasis_stripped() -> None:
    """ATX headings nest; link and image text stays, its URL goes; emphasis marks go, snake_case stays."""
    extraction = extract_document(MARKDOWN_DOC.encode(), "handbook.md")
    assert extraction.media_type == MARKDOWN
    assert extraction.title == "Flipped Classroom Handbook"
    assert [(s.heading, s.text) for s in extraction.sections] == [
        (
            ("Flipped Classroom Handbook",),
            "Flipped Classroom Handbook\n\nStart with a short video and one question about the key idea.\n"
            "Keep my_var_name and snake_case names as they are.",
        ),
        (
            ("Flipped Classroom Handbook", "Before class"),
            "Before class\n\nWatch the short videos diagram of the cycle first.",
        ),
        (("Flipped Classroom Handbook", "Before class", "Quiz"), "Quiz\n\nFive questions, auto-graded."),
        (
            ("Flipped Classroom Handbook", "In class"),
            "In class\n\nDiscuss in groups of four.\n\n# not a heading inside a code fence",
        ),
    ]
    assert all(s.page is None for s in extraction.sections)


def test_markdown_heading_closing_hashes() -> None:
    """Closing #s of a heading go, but a # that is part of the last word stays; #tag is not a heading."""
    extraction = extract_document(b"# Learn C#\n\nIntro.\n\n## Labs ##\n\n#tag line", "c.md")
    assert [(s.heading, s.text) for s in extraction.sections] == [
        (("Learn C#",), "Learn C#\n\nIntro."),
        (("Learn C#", "Labs"), "Labs\n\n#tag line"),
    ]


def test_markdown_needs_the_file_name_otherwise_it_is_plain_text() -> None:
    """Markdown and plain text have the same bytes; only the name tells them apart."""
    assert sniff_media_type(MARKDOWN_DOC.encode(), "notes.markdown") == MARKDOWN
    assert sniff_media_type(MARKDOWN_DOC.encode(), "notes.txt") == TEXT
    assert sniff_media_type(MARKDOWN_DOC.encode()) == TEXT


# --- Plain text and encodings -------------------------------------------------------------------------------

PLAIN = "Café résumé — naïve “quotes”\n\nÜbung für Lernende: 20 Minuten.\n"


@pytest.mark.parametrize(
    "data",
    [
        PLAIN.encode("utf-8"),
        b"\xef\xbb\xbf" + PLAIN.encode("utf-8"),
        PLAIN.encode("utf-16"),  # with a BOM, in the machine's byte order
        b"\xfe\xff" + PLAIN.encode("utf-16-be"),
        b"\xff\xfe" + PLAIN.encode("utf-16-le"),
        PLAIN.encode("cp1252"),
        PLAIN.replace("\n", "\r\n").encode("utf-8"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-bom", "utf-16-be-bom", "utf-16-le-bom", "cp1252", "crlf"],
)
def test_plain_text_encodings_decode_to_the_same_text(data: bytes) -> None:
    """Every supported encoding gives the same single unpaged section and the first line as title."""
    extraction = extract_document(data, "notes.txt")
    assert extraction.media_type == TEXT
    assert [(s.text, s.page, s.heading) for s in extraction.sections] == [
        ("Café résumé — naïve “quotes”\n\nÜbung für Lernende: 20 Minuten.", None, ())
    ]
    assert extraction.title == "Café résumé — naïve “quotes”"


def test_plain_text_max_chars_limit() -> None:
    """The character budget cuts the text and marks it truncated."""
    extraction = extract_document(PLAIN.encode(), limits=ExtractionLimits(max_chars=11))
    assert extraction.sections[0].text == "Café résumé"
    assert extraction.truncated


@pytest.mark.parametrize("data", [b"", b"   \n\t\n  "], ids=["empty", "whitespace"])
def test_empty_input_is_no_text(data: bytes) -> None:
    """Empty bytes and whitespace-only text have no text to index."""
    assert _reason(data, "empty.txt") == NO_TEXT


# --- Sniffing -----------------------------------------------------------------------------------------------


def test_sniffing_trusts_bytes_over_the_file_name() -> None:
    """An HTML page named .pdf is HTML; a PDF named .txt is a PDF; a DOCX named .pptx is a DOCX."""
    assert sniff_media_type(HTML_PAGE.encode(), "report.pdf") == HTML
    assert extract_document(HTML_PAGE.encode(), "report.pdf").media_type == HTML
    assert sniff_media_type(make_pdf(PDF_PAGES), "notes.txt") == PDF
    assert sniff_media_type(make_docx(DOCX_BLOCKS), "deck.pptx") == DOCX
    assert sniff_media_type(make_pptx(SLIDES), "memo.docx") == PPTX
    assert sniff_media_type(b"\xef\xbb\xbf<!doctype html><p>x", "a.md") == HTML


def test_zip_that_is_not_office_is_unsupported() -> None:
    """A ZIP archive without word/ or ppt/ parts, even named .docx, is 'unsupported_type'."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hello")
    assert _reason(out.getvalue(), "report.docx") == UNSUPPORTED_TYPE


def test_random_binary_is_unsupported() -> None:
    """Binary data of no known type is 'unsupported_type', whatever its name."""
    data = b"\x89\x00\x13" + random.Random(7).randbytes(4096)
    assert _reason(data, "slides.pptx") == UNSUPPORTED_TYPE
    assert _reason(b"\x7fELF\x02\x01\x01\x00" + bytes(64), "notes.txt") == UNSUPPORTED_TYPE


def test_extraction_result_type_defaults() -> None:
    """An Extraction carries no warnings unless the extractor sets them."""
    assert Extraction(TEXT, ()).warnings == ()
    assert BROKEN_TEXT_ENCODING == "broken_text_encoding"


# --- Text normalisation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ab\x00cd\x07e", "abcde"),  # NUL and other C0 controls
        ("lone\ud800 surrogate\udfff", "lone surrogate"),
        ("\u202eevil\u202c \u2066isolate\u2069 \u200fmark", "evil isolate mark"),  # bidi controls
        ("zero\u200bwidth soft\u00adhyphen \ufeffbom", "zerowidth softhyphen bom"),
        ("Cafe\u0301 A\u030a", "Café Å"),  # NFC
        ("learn-\ning and self-\nassessment", "learning and selfassessment"),  # hyphenated line breaks
        ("the years 2019-\n2020 at Jean-\nPaul", "the years 2019-2020 at Jean-Paul"),  # real hyphens stay
        ("many \t\u00a0\u3000 spaces\u2003here", "many spaces here"),
        ("  padded line  \n\n\n\n\nnext\r\nline\rend\fpage", "padded line\n\nnext\nline\nend\n\npage"),
    ],
    ids=["controls", "surrogates", "bidi", "invisible", "nfc", "hyphen", "real-hyphen", "spaces", "newlines"],
)
def test_normalise_text(raw: str, expected: str) -> None:
    """Controls, surrogates, bidi and invisible marks go; NFC; hyphenation undone; whitespace tidied."""
    assert normalise_text(raw) == expected


def test_normalisation_applies_to_extracted_text() -> None:
    """Extractors normalise: bidi overrides, zero-width and decomposed accents in a document come out clean."""
    data = "Re\u0301sume\u0301 of\u200b the \u202ecourse\u202c.\n"
    assert extract_document(data.encode()).sections[0].text == "Résumé of the course."
    assert extract_document(make_docx([("p", data)])).sections[0].text == "Résumé of the course."


def test_text_with_nul_bytes_is_binary() -> None:
    """NUL bytes mean binary data, not text: the type is not supported."""
    assert _reason(b"Some words\x00\x00 and more", "notes.txt") == UNSUPPORTED_TYPE


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["Peer review helps", "learners reflect."], "Peer review helps learners reflect."),
        (["每周两次课，每次9", "5分钟。"], "每周两次课，每次95分钟。"),
        (["学堂在线", "App推送"], "学堂在线App推送"),
        (["（共241名学生", "）中开展"], "（共241名学生）中开展"),
        (["한국어 텍스트는", "공백을 씁니다."], "한국어 텍스트는 공백을 씁니다."),
        (["การเรียนการสอน", "แบบห้องเรียน"], "การเรียนการสอน แบบห้องเรียน"),
    ],
    ids=["latin", "zh-digits", "zh-latin", "zh-fullwidth", "korean", "thai"],
)
def test_join_lines(lines: list[str], expected: str) -> None:
    """Wrapped lines join with a space, except next to Chinese/Japanese characters and punctuation."""
    assert join_lines(lines) == expected


def test_pdf_bookmarks_become_the_heading_path_of_each_page() -> None:
    """Pages take the path of the last bookmark starting on or before them; pages before any have none."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    bodies = ["Why we tried peer review.", "Rubrics and calibration rounds.", "Agreement was high.", "Next steps."]
    for body, sections in zip(bodies, [[], [("Methods", 0)], [("Results", 0), ("Agreement", 1)], []], strict=True):
        pdf.add_page()
        for title, level in sections:
            pdf.start_section(title, level=level)
        pdf.multi_cell(0, 6, body)
    extraction = extract_document(bytes(pdf.output()), "bookmarks.pdf")
    assert [(s.page, s.heading) for s in extraction.sections] == [
        (1, ()),
        (2, ("Methods",)),
        (3, ("Results", "Agreement")),
        (4, ("Results", "Agreement")),
    ]
