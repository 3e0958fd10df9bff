"""The PII redaction kernel of tasks/steps/filter/pii.py: what it redacts, kind by kind,
and the look-alike numbers it must leave alone."""

from __future__ import annotations

import ipaddress
import random

import pyarrow as pa
import pytest
from pydantic import ValidationError

from tasks.steps.filter.pii import KINDS, PII, redact

DEFAULTS = PII()


def one(text: str, options: PII = DEFAULTS) -> str:
    out, _ = redact(pa.array([text]), options)
    return out[0].as_py()


def check(cases: list[tuple[str, str]], kind: str) -> None:
    """Each text becomes its expected output, in one batch, with the right count."""
    out, counts = redact(pa.array([text for text, _ in cases]), DEFAULTS)
    assert out.to_pylist() == [expected for _, expected in cases]
    placeholder = {
        "email": "<email>",
        "ip_address": "<ip>",
        "korean_phone": "<phone>",
        "korean_rrn": "<rrn>",
    }[kind]
    assert counts[kind] == sum(expected.count(placeholder) for _, expected in cases)
    assert all(n == 0 for other, n in counts.items() if other != kind)


def unchanged(texts: list[str]) -> None:
    out, counts = redact(pa.array(texts), DEFAULTS)
    assert out.to_pylist() == texts
    assert counts == dict.fromkeys(KINDS, 0)


# --- e-mail ----------------------------------------------------------------------------


def test_email_redacted():
    check(
        [
            ("user@example.com", "<email>"),
            ("write to first.last+tag@mail.example.co.kr today", "write to <email> today"),
            ("연락: hong_gildong@naver.com 으로 주세요", "연락: <email> 으로 주세요"),
            ("메일주소는hong@daum.net입니다.", "메일주소는<email>입니다."),
            ("mailto:A-B%c@Sub-1.Example.ORG>", "mailto:<email>>"),
            ("a@x.io, b@y.io", "<email>, <email>"),
            ("...john@x.com", "...<email>"),
            # the local part may look like a phone number: it goes whole, as an e-mail
            ("01012345678@naver.com", "<email>"),
        ],
        "email",
    )


def test_email_not_redacted():
    unchanged(["a@b", "@example.com", "user@localhost", "x@y.c", "이메일 없음 @ 표시만", "a@.com"])


# --- IPv4 ------------------------------------------------------------------------------


def test_public_ipv4_redacted():
    check(
        [
            ("8.8.8.8", "<ip>"),
            ("서버 주소는 211.234.10.5 입니다", "서버 주소는 <ip> 입니다"),
            ("접속IP:203.0.113.7에서", "접속IP:<ip>에서"),
            ("DNS is 1.1.1.1.", "DNS is <ip>."),
            ("(52.95.110.1) http://52.95.110.1:8080/x", "(<ip>) http://<ip>:8080/x"),
            ("1.1.1.1 8.8.8.8,9.9.9.9;4.4.4.4", "<ip> <ip>,<ip>;<ip>"),
            ("1.1.1.1. 8.8.8.8", "<ip>. <ip>"),
            ("172.15.0.1 172.32.0.1 192.169.1.1", "<ip> <ip> <ip>"),
            ("100.63.1.1 100.128.1.1 169.253.1.1", "<ip> <ip> <ip>"),
            ("223.255.255.255", "<ip>"),
        ],
        "ip_address",
    )


def test_ipv4_not_redacted():
    unchanged(
        [
            "10.0.0.1",
            "사설망 192.168.0.1 과 172.16.5.4, 172.31.255.255",
            "localhost 127.0.0.1",
            "169.254.10.20 100.64.0.1 100.127.255.255 0.0.0.0",
            "netmask 255.255.255.0, multicast 224.0.0.1",
            "1.2.3.4.5",
            "11.2.3.4.5",
            "version 10.1.2.3.4 and 8.8.8.8.8",
            "v1.2.3.4 build1.2.3.4 1.2.3.4b",
            "256.1.1.1 1.2.3 01.2.3.4 1.02.3.4",
            "2024.01.15",
        ]
    )


def _public_v4(address: str) -> bool:
    ip = ipaddress.IPv4Address(address)
    private = [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/3",
    ]
    return not any(ip in ipaddress.IPv4Network(net) for net in private)


def test_ipv4_public_exactly_outside_the_excluded_ranges():
    seconds = (0, 1, 15, 16, 31, 32, 63, 64, 99, 127, 128, 167, 168, 169, 253, 254, 255)
    addresses = [f"{a}.{b}.{c}.{d}" for a in range(256) for b in seconds for c, d in ((0, 1),)]
    out, counts = redact(pa.array([f"at {x}." for x in addresses]), DEFAULTS)
    expected = [f"at {'<ip>' if _public_v4(x) else x}." for x in addresses]
    assert out.to_pylist() == expected
    assert counts["ip_address"] == sum(map(_public_v4, addresses))


# --- IPv6 ------------------------------------------------------------------------------


def test_public_ipv6_redacted():
    check(
        [
            ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "<ip>"),
            ("v6 주소 2606:4700:4700::1111 입니다", "v6 주소 <ip> 입니다"),
            ("IPv6:2001:db8::7334, [2400:cb00::1]:443", "IPv6:<ip>, [<ip>]:443"),
            ("3FFF:1:2:3:4:5::7 2001::1", "<ip> <ip>"),
            ("route 2001:db8::1/64", "route <ip>/64"),
            # an IPv4-mapped address goes whole when its IPv4 part is public
            ("::ffff:8.8.8.8", "<ip>"),
            # link-local: the interface identifier often comes from the hardware address
            ("fe80::1ff:fe23:4567:890a FE80::1", "<ip> <ip>"),
            ("fe80:0:0:0:21a:2bff:fe3c:4d5e", "<ip>"),
        ],
        "ip_address",
    )


def test_ipv6_not_redacted():
    unchanged(
        [
            "::1 and ::",
            "fd12:3456::1 fc00::2001:1",
            "ff02::1",
            "std::vector<int> a::b CAFE::BEEF Foo::Add",
            "12:30:45 at 23:59:59",
            "00:1a:2b:3c:4d:5e",
            "2001:db8::/32 2001::",
            "3fff:1:2:3:4:5:6::7",  # eight groups and a ::
            "::ffff:10.0.0.1",
            "0db8::1 200::1",
            "fe80::/10 fec0::1",
        ]
    )


# --- Korean phone numbers --------------------------------------------------------------


def test_korean_phone_redacted():
    check(
        [
            ("연락처는 010-1234-5678 입니다", "연락처는 <phone> 입니다"),
            ("전화번호:010.1234.5678로", "전화번호:<phone>로"),
            ("010 1234 5678, 010-1234-5678", "<phone>, <phone>"),
            ("011-123-4567 016-1234-5678 019 123 4567", "<phone> <phone> <phone>"),
            ("서울 02-123-4567, 02-1234-5678, 02.1234.5678", "서울 <phone>, <phone>, <phone>"),
            ("경기 031-123-4567 부산 051-1234-5678", "경기 <phone> 부산 <phone>"),
            ("인터넷전화 070-1234-5678", "인터넷전화 <phone>"),
            ("+82-10-1234-5678 or +82 10 1234 5678", "<phone> or <phone>"),
            ("+821012345678, +82-2-123-4567", "<phone>, <phone>"),
            ("(02) 123-4567 (031)1234-5678", "<phone> <phone>"),
            ("010-1234.5678 010.1234 5678", "<phone> <phone>"),
            # the trunk 0 kept after +82 goes with it
            ("+82 010-1234-5678", "<phone>"),
            ("010-1234-5678/02-123-4567\n031-123-4567", "<phone>/<phone>\n<phone>"),
        ],
        "korean_phone",
    )


def test_korean_phone_not_redacted():
    unchanged(
        [
            "010-1234-56789",
            "1010-1234-5678",
            "abc010-1234-5678",
            "날짜 2024-01-15, 시각 10:30",
            "주문번호 12345678901234",
            "070-123-4567",
            "050-1234-5678 080-123-4567",
            "대표번호 1588-1234",
            "010-12-5678",
            "사업자등록번호 123-45-67890, 카드 1234-5678-9012-3456",
        ]
    )


# --- Korean resident registration numbers ----------------------------------------------


def test_korean_rrn_redacted():
    check(
        [
            ("주민등록번호 900101-1234567 입니다", "주민등록번호 <rrn> 입니다"),
            ("주민등록번호: 9001011234567", "주민등록번호: <rrn>"),
            ("051231-4123456,851130-2123456", "<rrn>,<rrn>"),
            ("외국인등록번호:850315-5123456.", "외국인등록번호:<rrn>."),
            ("번호900101-1234567입니다", "번호<rrn>입니다"),
        ],
        "korean_rrn",
    )


def test_korean_rrn_not_redacted():
    unchanged(
        [
            "901301-1234567",  # month 13
            "900132-1234567",  # day 32
            "900001-1234567",  # month 00
            "900101-9234567",  # no such gender digit
            "900101-0234567",
            "900101-12345678",
            "1900101-1234567",
            "900101--1234567",
            "90010-1234567",
        ]
    )


# --- look-alikes: numbers that are not personal data ------------------------------------

LOOKALIKES = {
    "version numbers": [
        "Linux 5.15.0.91",
        "kernel 5.15.0.91-generic",
        "linux-image-generic 5.15.0.91.88",
        "version 5.15.0.91",
        "Version: 8.8.8.8",
        "ver. 1.2.3.4 and v 1.2.3.4",
        "v1.2.3.4",
        "10.0.19041.1",
        "Windows 10.0.19041.1",
        "release-1.2.3.4 build 1.2.3.4",
        "버전 1.2.3.4, 버전은 8.8.8.8",
        "5.15.0.91.2",
        "The kernel is version 5.15.0.91, see section 1.2.3.4 of the manual, ISBN 0198526636.",
    ],
    "section numbers": [
        "section 1.2.3.4",
        "see Sec. 1.2.3.4 and chapter 8.8.8.8",
        "§2.1.3.4",
        "§ 2.1.3.4",
        "제1.2.3.4절",
    ],
    "timestamps and barcodes": [
        "1701151234567",
        "created_at=1701151234567",
        "8801234567893",
        "barcode 8801234567893",
    ],
    "ISBNs": [
        "0198526636",
        "ISBN 0198526636",
        "ISBN 0-19-852663-6",
        "ISBN 978-0-19-852663-6",
        "9780198526636",
        "ISBN-13: 978-0198526636",
        "ISBN 89-7914-206-4",
    ],
    "coordinates": [
        "37.0212345678",
        "126.9779692",
        "lat 37.0212345678, lng 126.9779692",
        "(-37.0212345678, 127.0101234567)",
        "0.0101234567",
    ],
    "dates": ["2024-01-15", "2024.01.15", "20240115", "2024. 01. 15", "2024/01/15 10:30:00"],
    "order numbers and digit runs": [
        "order 20231215001234",
        "주문번호 9001011234567",
        "tracking 01012345678901",
        "12010-1234-5678",
        "010-1234-5678-9 010-1234-5678.5",
        "3.010-1234-5678",
    ],
    "prices": [
        "1,234,567원",
        "₩1,234,567",
        "₩1.234.567",
        "$1,234.56",
        "1.234.567 KRW",
        "12,345,678,901",
    ],
    "bare phone-length runs without a phone keyword": [
        "01012345678",
        "0212345678 and 0311234567",
        "연락 주세요 0198526636",
    ],
    "RRN look-alikes": [
        "9001011234567",
        "900231-1234567",  # 31 February
        "900431-1234567",  # 31 April
        "900101-9234567",
    ],
}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(text, id=f"{group}: {text}")
        for group, texts in LOOKALIKES.items()
        for text in texts
    ],
)
def test_lookalike_is_not_redacted(text):
    unchanged([text])


# --- every form of personal data the issue names -------------------------------------------

FORMS = [
    ("email", "john.doe+news@mail.example.co.kr", "<email>"),
    ("email", "메일 john.doe+news@mail.example.co.kr 로", "메일 <email> 로"),
    ("ip_address", "2001:db8::1", "<ip>"),
    ("ip_address", "fe80::1ff:fe23:4567:890a", "<ip>"),
    ("ip_address", "fe80::1%eth0", "<ip>%eth0"),
    ("ip_address", "::ffff:192.0.2.1", "<ip>"),
    ("ip_address", "client ::FFFF:8.8.8.8 connected", "client <ip> connected"),
    ("ip_address", "IP 8.8.8.8", "IP <ip>"),
    ("ip_address", "from 1.2.3.4-1.2.3.9", "from <ip>-<ip>"),
    ("korean_phone", "010-1234-5678", "<phone>"),
    ("korean_phone", "010.1234.5678", "<phone>"),
    ("korean_phone", "010 1234 5678", "<phone>"),
    ("korean_phone", "02-123-4567", "<phone>"),
    ("korean_phone", "+82 10-1234-5678", "<phone>"),
    ("korean_phone", "+82 010-1234-5678", "<phone>"),
    ("korean_phone", "031-123-4567", "<phone>"),
    ("korean_phone", "전화 01012345678", "전화 <phone>"),
    ("korean_phone", "연락처: 0212345678", "연락처: <phone>"),
    ("korean_phone", "휴대폰번호는 01098765432입니다", "휴대폰번호는 <phone>입니다"),
    ("korean_phone", "Tel. 0311234567", "Tel. <phone>"),
    ("korean_phone", "phone number: 010 12345678", "phone number: <phone>"),
    ("korean_phone", "Mobile:01012345678", "Mobile:<phone>"),
    ("korean_phone", "tel010-1234-5678", "tel<phone>"),
    ("korean_rrn", "900101-1234567", "<rrn>"),
    ("korean_rrn", "000229-3123456", "<rrn>"),
    ("korean_rrn", "201015-3987654", "<rrn>"),  # issued after Oct 2020: no check digit
    ("korean_rrn", "주민등록번호 9001011234567", "주민등록번호 <rrn>"),
    ("korean_rrn", "주민번호: 900101 1234567", "주민번호: <rrn>"),
    ("korean_rrn", "RRN 9001011234567", "RRN <rrn>"),
    ("korean_rrn", "resident registration no. 9001011234567", "resident registration no. <rrn>"),
    ("korean_rrn", "외국인등록번호는 8503155123456", "외국인등록번호는 <rrn>"),
]


@pytest.mark.parametrize(("kind", "text", "expected"), FORMS, ids=[text for _, text, _ in FORMS])
def test_form_is_redacted_and_counted(kind, text, expected):
    check([(text, expected)], kind)


def test_a_keyword_reaches_only_the_number_right_after_it():
    texts = [
        "전화 010-1234-5678 0198526636",
        "phone: 8.8.8.8 01012345678",
        "phone: 10.0.0.1 01012345678",
        "주민번호 010-1234-5678 9001011234567",
        "주민번호는 9001011234567, 8001011234567",
        "휴대폰 문의는 평일 오전 아홉 시부터 01012345678",  # more than 12 characters
        "hotel 0212345678",  # "tel" must start a word
    ]
    out, counts = redact(pa.array(texts), DEFAULTS)
    assert out.to_pylist() == [
        "전화 <phone> 0198526636",
        "phone: <ip> 01012345678",
        "phone: 10.0.0.1 01012345678",
        "주민번호 <phone> 9001011234567",
        "주민번호는 <rrn>, 8001011234567",
        "휴대폰 문의는 평일 오전 아홉 시부터 01012345678",
        "hotel 0212345678",
    ]
    assert counts == {"email": 0, "ip_address": 1, "korean_phone": 2, "korean_rrn": 1}


def test_numbers_in_a_list_are_each_redacted():
    check(
        [
            ("010-1234-5678,02-123-4567", "<phone>,<phone>"),
            ("전화: 02-123-4567, 010-1234-5678", "전화: <phone>, <phone>"),
            ("tel 010-1234-5678 tel 01099998888", "tel <phone> tel <phone>"),
            ("010-1234-5678 전화01099998888", "<phone> 전화<phone>"),
        ],
        "korean_phone",
    )
    check([("주민번호 900101-1234567 900102-1234567", "주민번호 <rrn> <rrn>")], "korean_rrn")


def test_texts_holding_noncharacters_are_redacted_alike():
    # The kernel marks matches with noncharacters while it works: one the text holds
    # is never taken for a mark, nor is one a replacement holds.
    text = "\ufdd0 8.8.8.8 version 1.2.3.4 \ufdd1 010-1234-5678 \ufdef"
    assert one(text) == "\ufdd0 <ip> version 1.2.3.4 \ufdd1 <phone> \ufdef"
    assert one("010-1234-5678", PII(phone_replacement="\ufdd0")) == "\ufdd0"
    # With (nearly) every noncharacter in the batch, the replacements go in directly.
    every = "".join(chr(c) for c in range(0xFDD0, 0xFDF0))
    out, counts = redact(pa.array([every, "8.8.8.8 kim@example.com 900101-1234567"]), DEFAULTS)
    assert out.to_pylist() == [every, "<ip> <email> <rrn>"]
    assert counts == {"email": 1, "ip_address": 1, "korean_phone": 0, "korean_rrn": 1}


# --- batches ---------------------------------------------------------------------------

SAMPLES = {
    "email": ["kim@example.com", "lee.s+news@mail.co.kr"],
    "ip_address": ["8.8.8.8", "211.45.60.7", "2001:db8::42"],
    "korean_phone": ["010-9876-5432", "02-555-1234", "+82 10 2222 3333"],
    "korean_rrn": ["880808-1234567", "020304-4123456"],
}
PLACEHOLDERS = {
    "email": "<email>",
    "ip_address": "<ip>",
    "korean_phone": "<phone>",
    "korean_rrn": "<rrn>",
}
FILLER = ["안녕하세요", "문의는", "아래로", "연락", "주세요.", "the", "server", "at", "및", "10:30"]


def test_mixed_batch_outputs_and_counts():
    rng = random.Random(7)
    texts, expected, counts = [], [], dict.fromkeys(KINDS, 0)
    for _ in range(300):
        words, redacted = [], []
        for _ in range(rng.randint(0, 30)):
            if rng.random() < 0.2:
                kind = rng.choice(KINDS)
                words.append(rng.choice(SAMPLES[kind]))
                redacted.append(PLACEHOLDERS[kind])
                counts[kind] += 1
            else:
                words.append(rng.choice(FILLER))
                redacted.append(words[-1])
        texts.append(" ".join(words))
        expected.append(" ".join(redacted))
    out, found = redact(pa.array(texts), DEFAULTS)
    assert out.to_pylist() == expected
    assert found == counts
    assert list(found) == list(KINDS)


TOKENS = [
    "010-1234-5678", "02-123-4567", "01012345678", "0198526636", "900101-1234567",
    "9001011234567", "8.8.8.8", "1.2.3.4", "10.0.0.1", "2001:db8::1", "fe80::1",
    "::ffff:8.8.8.8", "kim@x.com", "a1@b.co.kr", "전화", "연락처", "tel", "phone",
    "주민번호", "RRN", "version", "v", "§", "37", "5", "0", "x", "가", "+82", "(02)",
    "123", "1234-5678", "+82 10 1234 5678", "번호는", "number", ":",
]  # fmt: skip
SEPARATORS = [" ", "", ",", ".", "-", "\n", "/", ": ", ", ", ". "]


def test_counts_are_the_replacements_made_and_rows_are_independent():
    rng = random.Random(11)
    texts = [
        "".join(rng.choice(TOKENS) + rng.choice(SEPARATORS) for _ in range(rng.randint(1, 8)))
        for _ in range(2000)
    ]
    out, counts = redact(pa.array(texts), DEFAULTS)
    out = out.to_pylist()
    for kind, placeholder in PLACEHOLDERS.items():
        assert counts[kind] == sum(text.count(placeholder) for text in out)
    assert all(counts.values())
    for text, expected in zip(texts[:200], out[:200], strict=True):
        assert one(text) == expected


def test_nulls_stay_null_and_length_is_kept():
    out, counts = redact(pa.array([None, "010-1234-5678", None, ""]), DEFAULTS)
    assert out.to_pylist() == [None, "<phone>", None, ""]
    assert counts["korean_phone"] == 1


def test_large_string_keeps_its_type():
    texts = pa.array(["ip 8.8.8.8", None, "kim@example.com"], pa.large_string())
    out, counts = redact(texts, DEFAULTS)
    assert out.type == pa.large_string()
    assert out.to_pylist() == ["ip <ip>", None, "<email>"]
    assert counts == {"email": 1, "ip_address": 1, "korean_phone": 0, "korean_rrn": 0}


def test_chunked_and_empty_input():
    chunked = pa.chunked_array([["010-1234-5678"], ["8.8.8.8", None]])
    out, counts = redact(chunked, DEFAULTS)
    assert isinstance(out, pa.Array)
    assert out.to_pylist() == ["<phone>", "<ip>", None]
    assert counts["korean_phone"] == 1 and counts["ip_address"] == 1
    out, counts = redact(pa.chunked_array([], pa.string()), DEFAULTS)
    assert len(out) == 0 and out.type == pa.string()
    assert counts == dict.fromkeys(KINDS, 0)


def test_non_string_input_is_refused():
    with pytest.raises(TypeError, match="strings"):
        redact(pa.array([1, 2]), DEFAULTS)


def test_a_disabled_kind_is_left_alone_and_not_counted():
    text = "kim@example.com 8.8.8.8 010-1234-5678 900101-1234567"
    out, counts = redact(pa.array([text]), PII(korean_phone=False, email=False))
    assert out.to_pylist() == ["kim@example.com <ip> 010-1234-5678 <rrn>"]
    assert counts == {"ip_address": 1, "korean_rrn": 1}
    nothing = PII(email=False, ip_address=False, korean_phone=False, korean_rrn=False)
    out, counts = redact(pa.array([text]), nothing)
    assert out.to_pylist() == [text] and counts == {}


def test_custom_replacements_are_literal():
    options = PII(email_replacement=r"[\E $&]", phone_replacement="", rrn_replacement="***")
    out, _ = redact(pa.array(["kim@example.com / 010-1234-5678 / 900101-1234567"]), options)
    assert out.to_pylist() == [r"[\E $&] /  / ***"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email_replacement", "<at@>"),
        ("ip_replacement", "<ip4>"),
        ("phone_replacement", "XXX-XXXX-0000"),
        ("rrn_replacement", "<rrn٣>"),  # any Unicode digit
    ],
)
def test_a_replacement_the_patterns_could_match_is_refused_by_name(field, value):
    with pytest.raises(ValidationError, match=field):
        PII(**{field: value})


def test_options_are_strict_and_frozen():
    with pytest.raises(ValidationError):
        PII(phone=True)
    with pytest.raises(ValidationError):
        DEFAULTS.email = False  # type: ignore[misc]
