using Interceptor.Daemon.Control;

namespace Interceptor.Tests.Daemon.Control;

public class TerminalTextTests
{
    [TestCase("\u001b[2J\u001b[1;31m FAKE", @"\x1b[2J\x1b[1;31m FAKE")]
    [TestCase("a\u0007b\u007fc\u009bd\u0000", @"a\x07b\x7fc\x9bd\x00")]
    [TestCase("\u202egnp.exe \u2066x\u2069 \u200e\u200f\u200b\ufeff\u2028", @"\u202egnp.exe \u2066x\u2069 \u200e\u200f\u200b\ufeff\u2028")]
    [TestCase("tag \U000E0041", @"tag \U000e0041")]
    [TestCase("line\nbreak\ttab", @"line\x0abreak\x09tab")]
    public void Controls_and_invisible_formatting_are_shown_as_escapes(string text, string expected)
    {
        Assert.That(TerminalText.Escape(text), Is.EqualTo(expected));
    }

    [TestCase("plain ascii <a@b.example> 250 2.0.0 Ok")]
    [TestCase("Grüße, 日本語, emoji 😀, a\\x1b that was typed")]
    public void Ordinary_text_is_unchanged(string text)
    {
        Assert.That(TerminalText.Escape(text), Is.EqualTo(text));
    }

    [Test]
    public void A_lone_surrogate_is_escaped()
    {
        // Built here: an attribute's string cannot carry a lone surrogate (metadata stores UTF-8).
        var text = "lone " + (char)0xd800 + " surrogate";

        Assert.That(TerminalText.Escape(text), Is.EqualTo(@"lone \ud800 surrogate"));
    }

    [Test]
    public void Newlines_can_be_kept_for_a_whole_output()
    {
        Assert.That(TerminalText.EscapeKeepingNewlines("one\u001b\ntwo\r\n"), Is.EqualTo("one\\x1b\ntwo\\x0d\n"));
    }
}
