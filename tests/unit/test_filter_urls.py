"""The URL blocklist (tasks/steps/filter/urls.py): hosts as urlsplit finds them, a domain
blocking itself and its subdomains only, bad entries refused by name, rows without a
host counted and kept."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tasks.errors import InputError
from tasks.steps.filter import urls

DOMAINS = frozenset({"blocked.com", "ads.example.org", "xn--bcher-kva.de"})


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://blocked.com/page?q=1", "blocked.com"),
        ("HTTP://WWW.Blocked.COM./x", "www.blocked.com"),
        ("http://user:pw@sub.blocked.com:8080/", "sub.blocked.com"),
        ("https://bücher.de/", "xn--bcher-kva.de"),
        ("http://[::1]/", "::1"),
        ("  https://padded.org  ", "padded.org"),
        ("http://blocked.com\\@x.org/", "blocked.com"),  # "\\" is "/" to a browser
        ("http:\\\\blocked.com\\x", "blocked.com"),
        ("http://blocked%2Ecom/", "blocked.com"),
        ("\ufeffhttp://blocked.com/", "blocked.com"),
        ("http://blocked.com\u3002/", "blocked.com"),
        ("http://evil.org@blocked.com/", "blocked.com"),
        ("http://blocked.com@evil.org/", "evil.org"),
        ("blocked.com/page", None),  # no scheme: no host
        ("mailto:someone@blocked.com", None),
        ("http://[::1", None),  # does not parse
        ("", None),
        (None, None),
    ],
)
def test_hosts_are_what_urlsplit_finds(url, host):
    assert urls.host(url) == host


def test_a_domain_blocks_itself_and_its_subdomains_only():
    given = [
        "https://blocked.com/",
        "https://www.blocked.com/a",
        "https://a.b.blocked.com/",
        "https://notblocked.com/",
        "https://blocked.com.evil.org/",
        "https://example.org/",
        "https://ads.example.org/x",
        "https://bücher.de/",
        "not a url",
        None,
        "http://[::1",
    ]
    blocked, matched, without = urls.judge(pa.array(given, pa.string()), DOMAINS)
    assert blocked.tolist() == [True, True, True, False, False, False, True, True] + [False] * 3
    assert matched[:3] == ["blocked.com"] * 3 and matched[6:8] == [
        "ads.example.org",
        "xn--bcher-kva.de",
    ]
    assert without == 3


def test_the_widest_blocked_domain_is_named():
    assert urls.blocked_by("a.ads.example.org", DOMAINS | {"example.org"}) == "example.org"


@pytest.mark.parametrize(
    ("raw", "kept"),
    [("Blocked.COM", "blocked.com"), ("*.blocked.com", "blocked.com"), (".x.org.", "x.org")],
)
def test_entries_are_normalised(raw, kept):
    assert urls.domain(raw, "here") == kept


@pytest.mark.parametrize("raw", ["..", "https://blocked.com", "blocked.com/path", "two words.com"])
def test_an_entry_that_is_no_domain_is_refused_by_name(raw):
    with pytest.raises(InputError, match=r"list\.txt, line 3"):
        urls.read_domains(f"# comment\n\n{raw}\n", "list.txt")


def test_a_blocklist_file_skips_blank_lines_and_comments():
    text = "# blocked\nblocked.com  # spam\n\n  Ads.Example.org\r\n"
    assert urls.read_domains(text, "f") == {"blocked.com", "ads.example.org"}


def test_the_options_refuse_a_bad_domain_by_name():
    from pydantic import ValidationError

    from tasks.steps.filter.options import URLBlocklist

    with pytest.raises(ValidationError, match="block_domains"):
        URLBlocklist(block_domains=["ok.com", "http://no.com"])
    assert URLBlocklist(block_domains=["OK.com"]).block_domains == ("ok.com",)


def test_a_blocklist_that_cannot_be_read_says_what_the_string_is(tmp_path):
    with pytest.raises(InputError, match=r"filters\.url\.block_domains: cannot read .*a list is"):
        urls.blocklist("blocked.com", None)
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbfblocked.com\r\n\xff\n")
    with pytest.raises(InputError, match="not UTF-8"):
        urls.blocklist(str(tmp_path / "list.txt"), None)
    (tmp_path / "list.txt").write_bytes(b"\xef\xbb\xbfblocked.com\r\n")
    domains, said = urls.blocklist(str(tmp_path / "list.txt"), None)
    assert domains == {"blocked.com"} and said["domains"] == 1
