"""Build the binary part of kb's sample corpus: 2 PDFs and 2 PPTX decks.

The folder ``sample_docs/`` is kb's own small test corpus: the handbook of the
*Quillfin QF-300 benchtop microbioreactor* made by *Orrery Labs* (both fictional,
written for this project). It mixes English and Chinese on purpose:

===================================== ======================================================
file                                  what it is
===================================== ======================================================
qf300_user_manual_en.pdf              user manual, English, 4 pages (built here, reportlab)
qf300_service_manual_zh.pdf           service manual, Chinese, 4 pages (built here, reportlab,
                                      embedded subset of a CJK TrueType font)
qf300_operator_training_en.pptx       operator training deck, English, 5 slides (built here,
                                      python-pptx; table, speaker notes, grouped shape)
qf300_product_briefing_zh.pptx        dealer briefing deck, Chinese, 5 slides (built here;
                                      table, speaker notes, grouped shape)
qf300_troubleshooting_en.md           troubleshooting guide, English, nested headings (by hand)
qf300_faq_zh.md                       FAQ, Chinese, nested headings (by hand)
qf300_firmware_release_notes.txt      firmware release notes, plain text (by hand)
QUESTIONS.md                          questions with verbatim answers and their location,
                                      plus off-topic questions for abstention tests
check_questions.py                    asserts every answer sits at its stated location and
                                      nowhere else in the corpus
===================================== ======================================================

Every planted fact is stated in exactly one place; QUESTIONS.md lists them.
When ingesting the folder in tests, ingest only the seven document files above
(QUESTIONS.md contains all the answers, build.py contains the PDF/PPTX text).

Run ``python sample_docs/build.py`` to rebuild. Only the PDFs and decks are
(re)written; the Markdown and text files are hand-written and left alone.
Afterwards run ``python sample_docs/check_questions.py``.

Determinism: reportlab runs in invariant mode (fixed creation date and document
ID) and the PPTX files get fixed core properties and fixed zip timestamps, so a
rebuild with the same library and font versions yields identical bytes.

CJK font: the Chinese PDF embeds (a subset of) a real CJK TrueType font so that
text extraction yields real Chinese characters. The font is looked up in this
order:

1. the path in the environment variable ``KB_SAMPLE_CJK_FONT`` (a .ttf/.ttc with
   TrueType outlines; for a .ttc the first face is used);
2. ``/usr/share/fonts/truetype/wqy/wqy-microhei.ttc`` from the Debian package
   ``fonts-wqy-microhei`` (``apt-get install fonts-wqy-microhei``) -- the font
   the committed PDF was built with;
3. ``/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc`` (``fonts-wqy-zenhei``).

If none is found the build stops with a message saying how to install one. The
font is only needed to rebuild: tests use the committed PDF.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

EN_PDF = HERE / "qf300_user_manual_en.pdf"
ZH_PDF = HERE / "qf300_service_manual_zh.pdf"
EN_PPTX = HERE / "qf300_operator_training_en.pptx"
ZH_PPTX = HERE / "qf300_product_briefing_zh.pptx"

FIXED_DATE = _dt.datetime(2024, 3, 1, 9, 0, 0)
ZIP_DATE = (2024, 3, 1, 9, 0, 0)
AUTHOR = "Orrery Labs (fictional) - kb sample corpus"

CJK_FONT_ENV = "KB_SAMPLE_CJK_FONT"
CJK_FONT_CANDIDATES = [
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # Debian: fonts-wqy-microhei
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),  # Debian: fonts-wqy-zenhei
]


# --------------------------------------------------------------------------- fonts


def find_cjk_font() -> Path:
    env = os.environ.get(CJK_FONT_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            sys.exit(f"build.py: {CJK_FONT_ENV}={env} does not exist")
        return p
    for p in CJK_FONT_CANDIDATES:
        if p.is_file():
            return p
    sys.exit(
        "build.py: no CJK TrueType font found for the Chinese PDF.\n"
        "  Install one with:  apt-get update && apt-get install -y fonts-wqy-microhei\n"
        f"  or point {CJK_FONT_ENV} at a .ttf/.ttc with TrueType (glyf) outlines.\n"
        "  Looked in: " + ", ".join(str(p) for p in CJK_FONT_CANDIDATES)
    )


# --------------------------------------------------------------------------- PDFs


def _rl():
    from reportlab import rl_config

    rl_config.invariant = 1  # fixed creation date + document ID -> reproducible bytes
    rl_config.pageCompression = 1


def build_en_pdf(path: Path) -> int:
    _rl()
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    ss = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=ss["BodyText"], fontName="Helvetica", fontSize=10.5, leading=14.5, spaceAfter=6)
    h1 = ParagraphStyle("h1", parent=ss["Title"], fontName="Helvetica-Bold", fontSize=20, leading=24, spaceAfter=4)
    sub = ParagraphStyle("sub", parent=body, fontSize=11, textColor=colors.HexColor("#444444"), spaceAfter=14)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontName="Helvetica-Bold", fontSize=14, leading=18, spaceBefore=8, spaceAfter=6)
    h3 = ParagraphStyle("h3", parent=ss["Heading3"], fontName="Helvetica-Bold", fontSize=11.5, leading=15, spaceBefore=6, spaceAfter=3)
    cell = ParagraphStyle("cell", parent=body, fontSize=10, leading=13, spaceAfter=0)

    def P(t, s=body):
        return Paragraph(t, s)

    def table(rows, widths):
        t = Table([[Paragraph(c, cell) for c in r] for r in rows], colWidths=widths)
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f0")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    story = []
    # ---- page 1: overview + specifications
    story += [
        P("Quillfin QF-300 Benchtop Microbioreactor", h1),
        P("User Manual &#183; Orrery Labs &#183; Document OL-UM-300-EN, Revision C", sub),
        P("1 About this manual", h2),
        P(
            "This manual covers installation, daily operation and calibration of the Quillfin QF-300, "
            "a benchtop microbioreactor that runs up to twelve stirred cultures in parallel under "
            "individually controlled temperature, pH and dissolved oxygen. Deep cleaning, error codes and "
            "spare parts are described in the separate Chinese-language service manual OL-SM-300-ZH."
        ),
        P("Read the whole manual before the first run and keep it next to the instrument."),
        P("2 Specifications", h2),
        table(
            [
                ["Parameter", "Value"],
                ["Vessel positions", "12, individually controlled"],
                ["Chamber temperature range", "8 &#176;C to 62 &#176;C"],
                ["Temperature stability", "&#177;0.1 &#176;C at 37 &#176;C"],
                ["Stirring", "Magnetic, 50 rpm up to a maximum of 1,850 rpm"],
                ["Gas inputs", "Air, CO2 and N2 through push-fit tubing ports"],
                ["pH measurement range", "pH 3.0 to 10.0 (optical sensor spots)"],
                ["Dimensions (W &#215; D &#215; H)", "46 &#215; 52 &#215; 38 cm"],
                ["Weight", "31 kg"],
                ["Power input", "48 V DC from the external power supply, 240 W maximum"],
                ["Display", "Colour touch screen"],
            ],
            [6 * cm, 10 * cm],
        ),
        Spacer(1, 6),
        P("Specifications are subject to change without notice."),
        PageBreak(),
    ]
    # ---- page 2: installation
    story += [
        P("3 Installation", h2),
        P("3.1 Site requirements", h3),
        P(
            "Place the QF-300 on a level, vibration-free bench that can carry at least 60 kg. "
            "Leave a clearance of 22 cm at the rear so that the exhaust fan can draw air freely; "
            "the sides need no clearance. Do not place the unit in direct sunlight or next to a centrifuge."
        ),
        P("3.2 Unpacking", h3),
        P("1. Lift the unit out of the carton by the two recessed handles, never by the lid."),
        P("2. Remove the three red transport lock screws from the base plate and keep them in the accessory box."),
        P("3. Check the accessory box against the packing list: power supply, gas tubing, calibration cap and USB stick."),
        P("3.3 Power", h3),
        P(
            "Connect only the supplied external power supply, part number QF-PSU-48V. Third-party adapters "
            "void the CE marking and may damage the stirrer drive. Plug the supply into an earthed socket "
            "before connecting the DC plug to the rear panel."
        ),
        P("3.4 Gas connections", h3),
        P(
            "Connect house air and nitrogen to the ports labelled AIR and N2. The CO2 inlet expects a "
            "regulated supply: set the CO2 cylinder regulator to 0.8 bar before opening the valve. Higher "
            "pressures trip the inlet relief valve and the run will not start."
        ),
        PageBreak(),
    ]
    # ---- page 3: operation and calibration
    story += [
        P("4 Operation and calibration", h2),
        P("4.1 Warm-up", h3),
        P(
            "After switching on, let the instrument warm up for 40 minutes before calibrating any sensor. "
            "The status bar shows READY once the chamber temperature is stable."
        ),
        P("4.2 pH calibration", h3),
        P(
            "The optical pH spots are calibrated with a two-point procedure using the buffers "
            "pH 4.01 and pH 9.18, both at chamber temperature."
        ),
        P("1. Insert the calibration cap into position 1."),
        P("2. Fill the cap with the first buffer and close the lid."),
        P("3. Tap Calibrate &gt; pH and follow the prompts; repeat with the second buffer."),
        P("4. Accept the new slope only if the screen shows a green tick."),
        P("4.3 Starting a run", h3),
        P(
            "Create a run under Protocols &gt; New, choose the cartridge type and enter the set points for "
            "each position. A run can start immediately or be scheduled; each user can save up to eight protocols."
        ),
        P("4.4 Dissolved oxygen", h3),
        P(
            "The dissolved oxygen sensor is zeroed with nitrogen and spanned with air. The instrument performs "
            "both steps automatically when you select Calibrate &gt; DO."
        ),
        PageBreak(),
    ]
    # ---- page 4: maintenance, warranty, support
    story += [
        P("5 Maintenance, warranty and support", h2),
        P("5.1 Routine care", h3),
        P(
            "Wipe the deck and the inside of the lid with 70 % ethanol after each run. Deep cleaning, "
            "disinfection, sensor replacement and error codes are service tasks: see the service manual "
            "OL-SM-300-ZH."
        ),
        P("5.2 Warranty", h3),
        P(
            "The QF-300 is covered by a limited warranty of 27 months from the date of shipment. The warranty "
            "does not cover consumables such as cartridges, sensor spots and filters, nor damage caused by "
            "unapproved power supplies."
        ),
        P("5.3 Support", h3),
        P(
            "Write to qf-support@orrery-labs.example and include the serial number from the rear label and "
            "the firmware version shown under Settings &gt; About."
        ),
        P("5.4 Disposal", h3),
        P(
            "Do not dispose of the instrument with household waste. Return it to Orrery Labs or hand it to an "
            "authorised electronics recycler."
        ),
    ]

    def footer(canv, doc):
        canv.saveState()
        canv.setFont("Helvetica", 8)
        canv.drawString(2 * cm, 1.2 * cm, "Quillfin QF-300 User Manual - OL-UM-300-EN Rev. C")
        canv.drawRightString(A4[0] - 2 * cm, 1.2 * cm, f"Page {doc.page}")
        canv.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2 * cm,
        title="Quillfin QF-300 User Manual",
        author=AUTHOR,
        subject="User manual of the fictional Quillfin QF-300 benchtop microbioreactor",
        creator="kb sample_docs/build.py",
        keywords="kb, sample corpus, QF-300",
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return doc.page


def build_zh_pdf(path: Path, font_path: Path) -> int:
    _rl()
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import cm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    kw = {"subfontIndex": 0} if font_path.suffix.lower() == ".ttc" else {}
    try:
        pdfmetrics.registerFont(TTFont("SampleCJK", str(font_path), **kw))
    except Exception as e:  # e.g. CFF-outline OpenType, which reportlab cannot embed
        sys.exit(f"build.py: cannot use {font_path} as a TrueType font ({e}); use a font with glyf outlines")
    F = "SampleCJK"
    body = ParagraphStyle("zbody", fontName=F, fontSize=10.5, leading=17, spaceAfter=6, wordWrap="CJK")
    h1 = ParagraphStyle("zh1", parent=body, fontSize=20, leading=28, spaceAfter=4)
    sub = ParagraphStyle("zsub", parent=body, fontSize=11, textColor=colors.HexColor("#444444"), spaceAfter=14)
    h2 = ParagraphStyle("zh2", parent=body, fontSize=14, leading=20, spaceBefore=8, spaceAfter=8)
    cell = ParagraphStyle("zcell", parent=body, fontSize=10, leading=15, spaceAfter=0)

    def P(t, s=body):
        return Paragraph(t, s)

    def table(rows, widths):
        t = Table([[Paragraph(c, cell) for c in r] for r in rows], colWidths=widths)
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#888888")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f0e6dd")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    story = []
    # ---- 第 1 页：适用范围与安全
    story += [
        P("羽鳍 QF-300 台式微型生物反应器", h1),
        P("维修手册 · 奥瑞实验室 · 文档编号 OL-SM-300-ZH · 第 2 版", sub),
        P("1 适用范围与安全", h2),
        P("本手册适用于序列号以 QF3-K7 开头的羽鳍 QF-300 设备。较早批次的设备请联系奥瑞实验室获取对应版本的维修手册。"),
        P("维修人员资质：只有持有奥瑞实验室颁发的 B 级维修证书的人员方可打开设备外壳。未经授权的拆机将导致保修失效。"),
        P("电气安全：断开电源后，必须至少等待 7 分钟，待主板电容放电完毕后再拆下后盖。"),
        P("所需工具：T10 与 T20 梅花螺丝刀、防静电腕带、扭力螺丝刀。"),
        P("日常操作、安装与传感器校准请参阅英文用户手册 OL-UM-300-EN。"),
        PageBreak(),
    ]
    # ---- 第 2 页：清洗与消毒
    story += [
        P("2 清洗与消毒", h2),
        P("容器歧管每季度或在发生污染事件后必须彻底消毒。操作步骤如下："),
        P("1. 关闭设备，并按第 1 章的要求等待电容放电。"),
        P("2. 拧下容器歧管上的四颗 T20 螺丝，取下歧管。"),
        P("3. 将歧管完全浸没在 0.5% 过氧乙酸溶液中，浸泡 14 分钟。"),
        P("4. 用无菌水冲洗三次，然后在层流罩内自然晾干。"),
        P("5. 装回歧管，并执行气密性测试（设置 &gt; 维护 &gt; 气密测试）。"),
        P("注意：禁止使用含氯消毒剂或酒精浸泡歧管，以免损坏光学传感点。"),
        PageBreak(),
    ]
    # ---- 第 3 页：故障代码
    story += [
        P("3 故障代码", h2),
        P("以 E 开头的代码为错误，会立即中断运行，只能由持证维修人员处理。"),
        table(
            [
                ["代码", "含义", "处理方法"],
                ["E-101", "加热器开路", "检查加热膜连接器，必要时更换加热模块。"],
                ["E-214", "搅拌电机堵转", "取出卡盒，清除磁子周围的异物后重启设备。"],
                ["E-305", "二氧化碳传感器漂移", "执行二氧化碳零点校准；若仍报错，更换传感器。"],
                ["E-412", "主板温度过高", "检查后部风扇及通风间隙是否被遮挡。"],
            ],
            [2.2 * cm, 4.6 * cm, 9.2 * cm],
        ),
        Spacer(1, 8),
        P("说明：以 W 开头的代码为警告，不会中断运行，处理方法参见英文故障排除指南。"),
        PageBreak(),
    ]
    # ---- 第 4 页：定期更换与备件
    story += [
        P("4 定期更换与备件", h2),
        P("溶解氧传感器每 18 个月更换一次，无论读数是否正常。更换后须重新校准。"),
        table(
            [
                ["订货号", "名称", "说明"],
                ["QF-SB-0630", "搅拌磁子套件", "整套 PTFE 包覆磁子"],
                ["QF-OS-11", "溶解氧传感器", "更换后需重新校准"],
                ["QF-GK-04", "歧管密封圈套件", "每次消毒后更换"],
            ],
            [4 * cm, 4.5 * cm, 7.5 * cm],
        ),
        Spacer(1, 8),
        P("更换任何部件后，须在维修记录中填写设备序列号、更换日期和操作人员姓名。"),
    ]

    def footer(canv, doc):
        canv.saveState()
        canv.setFont(F, 8)
        canv.drawString(2 * cm, 1.2 * cm, "羽鳍 QF-300 维修手册 OL-SM-300-ZH")
        canv.drawRightString(A4[0] - 2 * cm, 1.2 * cm, f"第 {doc.page} 页")
        canv.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2 * cm,
        title="羽鳍 QF-300 维修手册",
        author=AUTHOR,
        subject="虚构产品羽鳍 QF-300 台式微型生物反应器的维修手册",
        creator="kb sample_docs/build.py",
        keywords="kb, sample corpus, QF-300",
        lang="zh-CN",
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return doc.page


# --------------------------------------------------------------------------- PPTX


def _set_core(prs, title: str, lang: str) -> None:
    cp = prs.core_properties
    cp.title = title
    cp.author = AUTHOR
    cp.last_modified_by = AUTHOR
    cp.subject = "kb sample corpus"
    cp.keywords = "kb, sample corpus, QF-300"
    cp.language = lang
    cp.revision = 1
    cp.created = FIXED_DATE
    cp.modified = FIXED_DATE
    cp.last_printed = FIXED_DATE


def _save_deterministic(prs, path: Path) -> None:
    """python-pptx stamps zip members with the current time; rewrite them with a fixed one."""
    buf = io.BytesIO()
    prs.save(buf)
    buf.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))
    path.write_bytes(out.getvalue())


def _bullets(slide, lines):
    body = slide.placeholders[1].text_frame
    body.text = lines[0]
    for line in lines[1:]:
        body.add_paragraph().text = line


def _notes(slide, text):
    slide.notes_slide.notes_text_frame.text = text


def _table(slide, rows, left, top, width, height, font_pt=14):
    from pptx.util import Pt

    shape = slide.shapes.add_table(len(rows), len(rows[0]), left, top, width, height)
    tbl = shape.table
    for r, row in enumerate(rows):
        for c, val in enumerate(row):
            cell = tbl.cell(r, c)
            cell.text = val
            for p in cell.text_frame.paragraphs:
                for run in p.runs:
                    run.font.size = Pt(font_pt)
    return tbl


def _group_flow(slide, boxes, left, top, box_w, box_h, gap, arrows=True):
    """Boxes (with optional arrows between them) in one group shape."""
    from pptx.dml.color import RGBColor
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.util import Emu, Pt

    grp = slide.shapes.add_group_shape()
    x = left
    for i, text in enumerate(boxes):
        box = grp.shapes.add_shape(MSO_SHAPE.ROUNDED_RECTANGLE, x, top, box_w, box_h)
        box.fill.solid()
        box.fill.fore_color.rgb = RGBColor(0x2E, 0x5E, 0x8C)
        tf = box.text_frame
        tf.word_wrap = True
        lines = text.split("\n")
        tf.text = lines[0]
        for line in lines[1:]:
            tf.add_paragraph().text = line
        for p in tf.paragraphs:
            for run in p.runs:
                run.font.size = Pt(16)
                run.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
        if arrows and i < len(boxes) - 1:
            aw = Emu(int(gap * 0.6))
            arrow = grp.shapes.add_shape(
                MSO_SHAPE.RIGHT_ARROW, Emu(x + box_w + int(gap * 0.2)), Emu(top + box_h // 2 - box_h // 8), aw, Emu(box_h // 4)
            )
            arrow.fill.solid()
            arrow.fill.fore_color.rgb = RGBColor(0x99, 0x99, 0x99)
        x = Emu(x + box_w + gap)
    grp.name = "Flow group"
    return grp


def build_en_pptx(path: Path) -> int:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    _set_core(prs, "QF-300 Operator Training", "en-US")
    L_TITLE, L_CONTENT, L_TITLE_ONLY = prs.slide_layouts[0], prs.slide_layouts[1], prs.slide_layouts[5]

    # 1 title
    s = prs.slides.add_slide(L_TITLE)
    s.shapes.title.text = "QF-300 Operator Training"
    s.placeholders[1].text = "Orrery Labs Academy - Module 1: Daily operation"
    _notes(
        s,
        "Welcome the group and check that every trainee has a workstation. This module covers start-up, "
        "cartridges, daily checks and shutdown of the Quillfin QF-300.",
    )

    # 2 start-up sequence (grouped shape)
    s = prs.slides.add_slide(L_TITLE_ONLY)
    s.shapes.title.text = "Start-up sequence"
    _group_flow(
        s,
        ["1. Power on\nrear switch", "2. Self-test\ntakes 95 seconds", "3. Load cartridges\nclose the lid"],
        Inches(0.5), Inches(2.4), Inches(2.5), Inches(1.6), Inches(0.5),
    )
    tb = s.shapes.add_textbox(Inches(0.5), Inches(4.6), Inches(9), Inches(1))
    tb.text_frame.text = "Do not open the lid while the self-test is running."
    tb.text_frame.paragraphs[0].runs[0].font.size = Pt(18)
    _notes(s, "Ask a trainee to power the unit on and describe what the status bar shows during the self-test.")

    # 3 cartridge table
    s = prs.slides.add_slide(L_TITLE_ONLY)
    s.shapes.title.text = "Cartridge types"
    _table(
        s,
        [
            ["Cartridge", "Max fill", "Cap colour", "Autoclavable"],
            ["QV-2", "1.9 mL", "white", "no"],
            ["QV-6", "5.8 mL", "amber", "no"],
            ["QV-12", "11.5 mL", "green", "yes"],
        ],
        Inches(0.7), Inches(2.0), Inches(8.6), Inches(2.0), font_pt=18,
    )
    _notes(s, "Pass the three cartridge types around so that trainees can feel the cap colours with gloves on.")

    # 4 daily checklist (fact in notes)
    s = prs.slides.add_slide(L_CONTENT)
    s.shapes.title.text = "Daily checklist"
    _bullets(
        s,
        [
            "Empty and dry the condensate tray",
            "Check the gas tubing for kinks",
            "Confirm the status bar shows READY",
            "Record the chamber readings in the logbook",
        ],
    )
    _notes(
        s,
        "Operators sign the completed checklist on form OL-F-112; the lab supervisor countersigns the forms "
        "every Friday.",
    )

    # 5 shutdown + certification (fact on slide and in notes)
    s = prs.slides.add_slide(L_CONTENT)
    s.shapes.title.text = "Shutdown and certification"
    _bullets(
        s,
        [
            "Run program PURGE-2 to flush the gas lines",
            "Remove all cartridges and wipe the deck",
            "Switch off at the rear panel",
            "Take the certification quiz",
        ],
    )
    _notes(
        s,
        "The certification quiz has twenty questions and the pass mark is 17 out of 20. Trainees who fail "
        "may retake it after one week.",
    )

    _save_deterministic(prs, path)
    return len(prs.slides)


def build_zh_pptx(path: Path) -> int:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    _set_core(prs, "羽鳍 QF-300 产品简介", "zh-CN")
    L_TITLE, L_CONTENT, L_TITLE_ONLY = prs.slide_layouts[0], prs.slide_layouts[1], prs.slide_layouts[5]

    # 1 title (fact in notes)
    s = prs.slides.add_slide(L_TITLE)
    s.shapes.title.text = "羽鳍 QF-300 产品简介"
    s.placeholders[1].text = "奥瑞实验室 · 经销商渠道培训"
    _notes(s, "开场：羽鳍 QF-300 于 2023年9月14日 在苏州正式发布，是奥瑞实验室的第三代台式微型生物反应器。")

    # 2 highlights (grouped shape)
    s = prs.slides.add_slide(L_TITLE_ONLY)
    s.shapes.title.text = "核心优势"
    _group_flow(
        s,
        ["静音\n运行噪音低于 41 分贝", "紧凑\n可放在生物安全柜旁的实验台上", "互联\n支持远程监控与数据导出"],
        Inches(0.5), Inches(2.3), Inches(2.8), Inches(2.0), Inches(0.3), arrows=False,
    )
    _notes(s, "请结合客户现场的实际情况介绍这三项优势，不要承诺未列出的功能。")

    # 3 price table
    s = prs.slides.add_slide(L_TITLE_ONLY)
    s.shapes.title.text = "型号与价格"
    _table(
        s,
        [
            ["型号", "建议零售价", "适合用户"],
            ["QF-300 Lite", "158,000 元", "教学实验室"],
            ["QF-300", "226,000 元", "工艺开发"],
            ["QF-300 Pro", "268,000 元", "高通量筛选"],
        ],
        Inches(0.7), Inches(2.0), Inches(8.6), Inches(2.0), font_pt=18,
    )
    _notes(s, "表中价格均为含税建议零售价，任何额外折扣须经区域经理书面批准。")

    # 4 service (fact in notes)
    s = prs.slides.add_slide(L_CONTENT)
    s.shapes.title.text = "服务与培训"
    _bullets(s, ["免费装机与操作培训", "年度预防性维护巡检", "授权经销商提供本地备件库存"])
    _notes(s, "华东区授权经销商为沪澄科技，负责上海、江苏和浙江的装机与售后服务。")

    # 5 ordering
    s = prs.slides.add_slide(L_CONTENT)
    s.shapes.title.text = "订购信息"
    _bullets(s, ["标准配置订货号：QF300-CN-STD", "标准交货周期：6 至 8 周", "订单请通过授权经销商提交"])
    _notes(s, "提醒经销商：订单确认后再向客户承诺具体的装机日期。")

    _save_deterministic(prs, path)
    return len(prs.slides)


# --------------------------------------------------------------------------- main


def main() -> None:
    font = find_cjk_font()
    n = build_en_pdf(EN_PDF)
    assert n == 4, f"{EN_PDF.name}: expected 4 pages, got {n}"
    n = build_zh_pdf(ZH_PDF, font)
    assert n == 4, f"{ZH_PDF.name}: expected 4 pages, got {n}"
    n = build_en_pptx(EN_PPTX)
    assert n == 5
    n = build_zh_pptx(ZH_PPTX)
    assert n == 5
    print(f"CJK font: {font}")
    for p in (EN_PDF, ZH_PDF, EN_PPTX, ZH_PPTX):
        print(f"wrote {p.relative_to(HERE.parent)} ({p.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
