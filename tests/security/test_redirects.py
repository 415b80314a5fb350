"""Threat: a forged or abused redirect steering a visitor to a phishing site.

Channel Talk's AI agent can tell channel-push to navigate a visitor's browser.
Anyone who gets a URL of their choosing through (by prompt-injecting the agent,
forging or replaying its call, or exploiting a URL-parser quirk) can send the
site's own customers to a look-alike login or payment page. These tests pin
down that RedirectPolicy.check lets through only strictly parsed http(s) URLs
whose host and port are on the allow list for the visitor's channel, and that
it refuses every trick in the corpus below.
"""

import ast
from pathlib import Path

import pytest

from security.redirects import HostAllowList, HostPattern, RedirectPolicy, RedirectRefused

PARTNER_CHANNEL = "ch-42"

POLICY = RedirectPolicy(
    default=HostAllowList.parse(
        https_hosts=[
            "shop.example.com",
            "*.cdn.example.com",
            "pay.example.com:8443",
            "한국.example",
            "203.0.113.7",
            "[2001:db8::1]",
        ],
        http_hosts=["localhost:8000", "127.0.0.1:8000"],
    ),
    per_channel={PARTNER_CHANNEL: HostAllowList.parse(["partner.example.org"])},
)


def refused(case_id, url, channel_id=None):
    return pytest.param(url, channel_id, id=case_id)


def allowed(case_id, url, normalised=None, channel_id=None):
    """A URL that must pass; ``normalised`` is what check() returns, if not the URL itself."""
    return pytest.param(url, channel_id, url if normalised is None else normalised, id=case_id)


ATTACKS = [
    # Host confusion through userinfo, backslashes and a missing authority.
    refused("unlisted-host", "https://evil.com/"),
    refused("userinfo-allowed-host-as-username", "https://shop.example.com@evil.com/"),
    refused("userinfo-credentials", "https://user:pw@shop.example.com/"),
    refused("userinfo-empty", "https://@shop.example.com/"),
    refused("userinfo-after-semicolon", "https://shop.example.com;@evil.com/"),
    refused("userinfo-fake-port", "https://shop.example.com:443@evil.com/"),
    refused("slash-backslash-after-scheme", "https:/\\evil.com"),
    refused("double-backslash-after-scheme", "https:\\\\evil.com"),
    refused("backslash-before-at", "https://shop.example.com\\@evil.com"),
    refused("backslash-in-path", "https://shop.example.com/\\evil.com"),
    refused("unc-style-backslashes", "\\\\evil.com"),
    refused("protocol-relative", "//evil.com/"),
    refused("protocol-relative-with-backslash", "/\\evil.com"),
    refused("relative-path", "/account/orders"),
    refused("bare-host-without-scheme", "evil.com"),
    refused("scheme-without-slashes", "https:evil.com"),
    refused("triple-slash-empty-authority", "https:///evil.com"),
    refused("empty-host-with-port", "https://:443/"),
    refused("empty-string", ""),
    # Script and other non-web schemes, disguised.
    refused("javascript-scheme", "javascript:alert(document.cookie)"),
    refused("javascript-mixed-case", "JaVaScRiPt:alert(1)"),
    refused("javascript-embedded-tab", "java\tscript:alert(1)"),
    refused("javascript-embedded-newline", "java\nscript:alert(1)"),
    refused("javascript-leading-space", " javascript:alert(1)"),
    refused("javascript-leading-nul", "\x00javascript:alert(1)"),
    refused("data-scheme", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="),
    refused("vbscript-scheme", "vbscript:msgbox(1)"),
    refused("file-scheme", "file:///etc/passwd"),
    refused("blob-scheme-wrapping-allowed-host", "blob:https://shop.example.com/0b6c1a2e"),
    refused("ftp-scheme", "ftp://shop.example.com/"),
    refused("plain-http-for-https-only-host", "http://shop.example.com/"),
    # Control characters and whitespace anywhere.
    refused("leading-space", " https://shop.example.com/"),
    refused("trailing-newline", "https://shop.example.com/\n"),
    refused("tab-inside-host", "https://shop.exam\tple.com/"),
    refused("crlf-injection", "https://shop.example.com/\r\nLocation: https://evil.com"),
    refused("del-character", "https://shop.example.com/\x7f"),
    refused("no-break-space", "https://shop.example.com/\u00a0"),
    refused("zero-width-space-in-host", "https://shop\u200b.example.com/"),
    refused("right-to-left-override", "https://shop.example.com/\u202emoc.live"),
    refused("ideographic-space", "https://shop.example.com/\u3000"),
    # Encoded and look-alike hosts.
    refused("percent-encoded-host", "https://%65vil.com/"),
    refused("percent-encoded-dot-in-host", "https://shop.example.com%2eevil.com/"),
    refused("percent-encoded-at-in-host", "https://shop.example.com%40evil.com/"),
    refused("cyrillic-o-homograph", "https://sh\u043ep.example.com/"),
    refused("cyrillic-o-homograph-as-punycode", "https://xn--shp-ted.example.com/"),
    refused("ideographic-full-stop-dots", "https://shop\u3002example\u3002com/"),
    refused("fullwidth-full-stop-dots", "https://shop\uff0eexample\uff0ecom/"),
    refused("halfwidth-ideographic-dots", "https://shop\uff61example\uff61com/"),
    refused("fullwidth-letters-in-host", "https://\uff53\uff48\uff4f\uff50.example.com/"),
    refused("kelvin-sign-lowercasing-to-ascii-k", "https://\u212a.cdn.example.com/"),
    refused("non-ascii-uppercase-in-host", "https://\u0428.cdn.example.com/"),
    refused("trailing-dot-host", "https://shop.example.com./"),
    refused("empty-label-in-host", "https://shop..example.com/"),
    refused("underscore-in-host", "https://shop_example.com/"),
    refused("allowed-host-as-prefix-of-evil-host", "https://shop.example.com.evil.com/"),
    refused("allowed-host-in-path", "https://evil.com/shop.example.com"),
    refused("allowed-host-in-query", "https://evil.com/?next=https://shop.example.com/"),
    refused("allowed-host-in-fragment", "https://evil.com#shop.example.com"),
    # Wildcards.
    refused("wildcard-bare-parent", "https://cdn.example.com/"),
    refused("wildcard-suffix-without-dot", "https://evilcdn.example.com/"),
    refused("literal-asterisk-host", "https://*.cdn.example.com/"),
    # Ports.
    refused("unlisted-port", "https://shop.example.com:444/"),
    refused("port-zero", "https://shop.example.com:0/"),
    refused("port-out-of-range", "https://shop.example.com:65536/"),
    refused("empty-port", "https://shop.example.com:/"),
    refused("port-with-plus-sign", "https://shop.example.com:+443/"),
    refused("port-repeated", "https://shop.example.com:443:443/"),
    refused("default-port-when-entry-names-a-port", "https://pay.example.com/"),
    refused("http-host-on-unlisted-port", "http://localhost/"),
    # IP literals, including the alternative spellings browsers accept.
    refused("unlisted-ipv4", "https://198.51.100.1/"),
    refused("ipv4-as-decimal-integer", "http://2130706433:8000/"),
    refused("ipv4-hex-and-short", "http://0x7f.1:8000/"),
    refused("ipv4-as-hex-integer", "http://0x7f000001:8000/"),
    refused("ipv4-octal-octet", "http://0177.0.0.1:8000/"),
    refused("ipv4-short-form", "http://127.1:8000/"),
    refused("ipv4-trailing-dot", "http://127.0.0.1.:8000/"),
    refused("ipv4-mapped-ipv6", "http://[::ffff:127.0.0.1]:8000/"),
    refused("unlisted-ipv6", "https://[::1]/"),
    refused("ipv6-zone-id", "https://[fe80::1%25eth0]/"),
    refused("ipv6-unclosed-bracket", "https://[2001:db8::1/"),
    refused("ipv6-without-brackets", "https://::1/"),
    # Malformed and oversized.
    refused("malformed-percent-escape", "https://shop.example.com/%zz"),
    refused("longer-than-2048-chars", "https://shop.example.com/" + "a" * 2048),
    refused("longer-than-2048-once-encoded", "https://shop.example.com/" + "가" * 300),
    # Per-channel lists.
    refused("channel-only-host-without-channel", "https://partner.example.org/"),
    refused("default-host-on-channel-with-own-list", "https://shop.example.com/", PARTNER_CHANNEL),
]

LEGITIMATE = [
    allowed("root", "https://shop.example.com/"),
    allowed("no-path", "https://shop.example.com"),
    allowed("path-query-fragment", "https://shop.example.com/products/42?color=red&size=m#reviews"),
    allowed(
        "korean-path",
        "https://shop.example.com/상품/신발",
        "https://shop.example.com/%EC%83%81%ED%92%88/%EC%8B%A0%EB%B0%9C",
    ),
    allowed(
        "korean-query",
        "https://shop.example.com/search?q=운동화&sort=인기순",
        "https://shop.example.com/search?q=%EC%9A%B4%EB%8F%99%ED%99%94"
        "&sort=%EC%9D%B8%EA%B8%B0%EC%88%9C",
    ),
    allowed(
        "korean-fragment", "https://shop.example.com/faq#배송", "https://shop.example.com/faq#%EB%B0%B0%EC%86%A1"
    ),
    allowed("already-percent-encoded-path", "https://shop.example.com/%EC%83%81%ED%92%88"),
    allowed(
        "brackets-in-query",
        "https://shop.example.com/list?filter[color]=red",
        "https://shop.example.com/list?filter%5Bcolor%5D=red",
    ),
    allowed("encoded-url-in-query", "https://shop.example.com/login?next=https%3A%2F%2Fshop.example.com%2F"),
    allowed("at-sign-in-path", "https://shop.example.com/@brand"),
    allowed("uppercase-scheme-and-host", "HTTPS://SHOP.Example.COM/Sale", "https://shop.example.com/Sale"),
    allowed("wildcard-subdomain", "https://img.cdn.example.com/a.png"),
    allowed("wildcard-deep-subdomain", "https://eu.img.cdn.example.com/a.png"),
    allowed("explicit-allowed-port", "https://pay.example.com:8443/checkout"),
    allowed("explicit-default-https-port", "https://shop.example.com:443/", "https://shop.example.com/"),
    allowed("http-for-http-host", "http://localhost:8000/dev"),
    allowed("https-for-http-host", "https://localhost:8000/dev"),
    allowed("listed-ipv4-over-http", "http://127.0.0.1:8000/"),
    allowed("listed-ipv4", "https://203.0.113.7/"),
    allowed("listed-ipv6-any-spelling", "https://[2001:DB8:0::1]/", "https://[2001:db8::1]/"),
    allowed("listed-korean-idn-host", "https://한국.example/", "https://xn--3e0b707e.example/"),
    allowed("listed-idn-host-as-punycode", "https://xn--3e0b707e.example/"),
    allowed("per-channel-list", "https://partner.example.org/offer", channel_id=PARTNER_CHANNEL),
    allowed("unknown-channel-uses-default", "https://shop.example.com/", channel_id="ch-without-own-list"),
]


@pytest.mark.parametrize(("url", "channel_id"), ATTACKS)
def test_redirect_attack_is_refused(url, channel_id):
    with pytest.raises(RedirectRefused):
        POLICY.check(url, channel_id)


@pytest.mark.parametrize(("url", "channel_id", "normalised"), LEGITIMATE)
def test_legitimate_redirect_is_allowed_and_normalised(url, channel_id, normalised):
    assert POLICY.check(url, channel_id) == normalised


@pytest.mark.parametrize(("url", "channel_id", "normalised"), LEGITIMATE)
def test_allowed_redirect_is_ascii_and_rechecks_unchanged(url, channel_id, normalised):
    checked = POLICY.check(url, channel_id)
    assert checked.isascii()
    assert POLICY.check(checked, channel_id) == checked


def test_corpus_is_large_enough():
    assert len(ATTACKS) >= 45
    assert len(LEGITIMATE) >= 12


def test_redirect_to_unlisted_host_is_refused():
    with pytest.raises(RedirectRefused) as refused:
        POLICY.check("https://evil.com/login")
    assert refused.value.reason == "host not allowed: evil.com"


def test_refusal_names_homograph_host_in_punycode():
    with pytest.raises(RedirectRefused) as refused:
        POLICY.check("https://sh\u043ep.example.com/")
    assert refused.value.reason == "host not allowed: xn--shp-ted.example.com"


def test_wildcard_entry_never_matches_its_bare_parent():
    policy = RedirectPolicy(HostAllowList.parse(["*.example.com"]))
    assert policy.check("https://a.example.com/") == "https://a.example.com/"
    with pytest.raises(RedirectRefused, match="host not allowed"):
        policy.check("https://example.com/")


def test_wildcard_and_bare_parent_both_listed_match_both():
    policy = RedirectPolicy(HostAllowList.parse(["*.example.com", "example.com"]))
    assert policy.check("https://example.com/") == "https://example.com/"
    assert policy.check("https://a.b.example.com/") == "https://a.b.example.com/"


def test_channel_list_replaces_default_for_that_channel():
    policy = RedirectPolicy(
        default=HostAllowList.parse(["shop.example.com"]),
        per_channel={"ch-1": HostAllowList.parse(["partner.example.org"])},
    )
    assert policy.check("https://partner.example.org/", "ch-1") == "https://partner.example.org/"
    with pytest.raises(RedirectRefused):
        policy.check("https://shop.example.com/", "ch-1")
    assert policy.check("https://shop.example.com/", "ch-2") == "https://shop.example.com/"
    with pytest.raises(RedirectRefused):
        policy.check("https://partner.example.org/")


def test_channel_with_empty_list_allows_nothing():
    policy = RedirectPolicy(HostAllowList.parse(["shop.example.com"]), {"ch-1": HostAllowList.parse([])})
    with pytest.raises(RedirectRefused):
        policy.check("https://shop.example.com/", "ch-1")


def test_per_channel_mapping_is_copied_and_read_only():
    channels = {"ch-1": HostAllowList.parse(["partner.example.org"])}
    policy = RedirectPolicy(HostAllowList.parse([]), channels)
    channels["ch-1"] = HostAllowList.parse(["evil.com"])
    with pytest.raises(RedirectRefused):
        policy.check("https://evil.com/", "ch-1")
    with pytest.raises(TypeError):
        policy.per_channel["ch-2"] = HostAllowList.parse(["evil.com"])


def test_policy_with_non_allow_list_value_is_rejected():
    with pytest.raises(TypeError):
        RedirectPolicy(HostAllowList.parse([]), {"ch-1": ["shop.example.com"]})
    with pytest.raises(TypeError):
        RedirectPolicy(["shop.example.com"])


def test_plain_http_refusal_says_https_is_required():
    with pytest.raises(RedirectRefused, match=r"https required\): shop\.example\.com$"):
        POLICY.check("http://shop.example.com/")


def test_unlisted_port_refusal_names_host_and_port():
    with pytest.raises(RedirectRefused) as refused:
        POLICY.check("https://shop.example.com:444/")
    assert refused.value.reason == "port not allowed: shop.example.com:444"


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param("", id="empty"),
        pytest.param("https://shop.example.com", id="url-not-host"),
        pytest.param("shop.example.com/path", id="path"),
        pytest.param("user@shop.example.com", id="userinfo"),
        pytest.param("*", id="bare-asterisk"),
        pytest.param("*.com", id="wildcard-over-tld"),
        pytest.param("shop.*.com", id="asterisk-mid-host"),
        pytest.param("*shop.example.com", id="asterisk-without-dot"),
        pytest.param("*.127.0.0.1", id="wildcard-over-ip"),
        pytest.param("shop.example.com.", id="trailing-dot"),
        pytest.param("shop..example.com", id="empty-label"),
        pytest.param("shop.example.com:0", id="port-zero"),
        pytest.param("shop.example.com:99999", id="port-out-of-range"),
        pytest.param("shop.example.com:", id="empty-port"),
        pytest.param("shop.example.com:https", id="named-port"),
        pytest.param("::1", id="ipv6-without-brackets"),
        pytest.param("[::1", id="ipv6-unclosed-bracket"),
        pytest.param("127.1", id="ipv4-short-form"),
        pytest.param("0x7f.0.0.1", id="ipv4-hex-octet"),
        pytest.param("sho p.example.com", id="inner-space"),
        pytest.param("shop%2eexample.com", id="percent-encoded"),
        pytest.param("shop_example.com", id="underscore"),
        pytest.param("shop\u3002example.com", id="ideographic-full-stop"),
        pytest.param("xn--zz.example.com", id="invalid-punycode"),
    ],
)
def test_invalid_allow_list_entry_raises_value_error_naming_it(entry):
    with pytest.raises(ValueError) as error:
        HostAllowList.parse(["shop.example.com", entry])
    assert repr(entry) in str(error.value)


def test_invalid_http_host_entry_raises_value_error():
    with pytest.raises(ValueError, match="localhost:abc"):
        HostAllowList.parse([], http_hosts=["localhost:abc"])


def test_single_string_instead_of_list_of_entries_is_rejected():
    with pytest.raises(TypeError, match="single string"):
        HostAllowList.parse("shop.example.com")


def test_allow_list_entries_are_normalised():
    spelled_loosely = HostAllowList.parse(
        [" SHOP.Example.COM ", "한국.EXAMPLE", "*.CDN.example.com", "[2001:DB8:0::1]"]
    )
    spelled_canonically = HostAllowList.parse(
        ["shop.example.com", "xn--3e0b707e.example", "*.cdn.example.com", "[2001:db8::1]"]
    )
    assert spelled_loosely == spelled_canonically


def test_wildcard_entry_parses_into_parent_domain_pattern():
    expected = HostPattern(host="example.com", port=8443, wildcard=True)
    assert HostPattern.parse("*.Example.com:8443") == expected


def test_refusal_reason_caps_echoed_host_for_huge_url():
    long_host = ".".join(["a" * 60, "b" * 60, "c" * 60, "evil.com"])
    url = f"https://{long_host}/" + "x" * 1500
    with pytest.raises(RedirectRefused) as refused:
        POLICY.check(url)
    reason = refused.value.reason
    assert reason.startswith("host not allowed: aaaa")
    assert len(reason) <= 130
    assert long_host not in reason


def test_refusal_reason_for_oversized_url_does_not_echo_it():
    url = "https://evil.com/" + "x" * 5000
    with pytest.raises(RedirectRefused) as refused:
        POLICY.check(url)
    assert refused.value.reason == "URL too long: 5017 characters (max 2048)"


def test_refused_redirect_is_a_value_error_whose_message_is_the_reason():
    with pytest.raises(ValueError) as refused:
        POLICY.check("javascript:alert(1)")
    assert isinstance(refused.value, RedirectRefused)
    assert str(refused.value) == refused.value.reason == "scheme not allowed: javascript"


def test_non_string_url_is_refused():
    with pytest.raises(RedirectRefused):
        POLICY.check(b"https://shop.example.com/")


def test_checks_hold_when_validators_is_set_to_raise(monkeypatch):
    monkeypatch.setenv("RAISE_VALIDATION_ERROR", "True")
    assert POLICY.check("https://shop.example.com/a") == "https://shop.example.com/a"
    with pytest.raises(RedirectRefused):
        POLICY.check("https://evil.com/")


def imported_module_names(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_security_modules_do_not_import_service_packages():
    for module in Path(__file__).parents[2].joinpath("security").glob("*.py"):
        top_level = {name.split(".")[0] for name in imported_module_names(module.read_text(encoding="utf-8"))}
        assert not top_level & {"sse", "channel_app"}, module
