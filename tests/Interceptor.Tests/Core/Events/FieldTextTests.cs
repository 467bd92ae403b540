using Interceptor.Core.Events;

namespace Interceptor.Tests.Core.Events;

public class FieldTextTests
{
    [TestCase("alice@example.com", "alice@example.com")]
    [TestCase("/home/alice/public_html", "/home/alice/public_html")]
    [TestCase("\"x> uid=0 user=root from=<y\"@bank.example", "%22x%3E%20uid%3D0%20user%3Droot%20from%3D%3Cy%22@bank.example")]
    [TestCase("x uid=0 user=root; host=evil", "x%20uid%3D0%20user%3Droot%3B%20host%3Devil")]
    [TestCase("100%\\\u001b\u007f", "100%25%5C%1B%7F")]
    [TestCase("grüße＝\u00a0\u202e", "gr%C3%BC%C3%9Fe%EF%BC%9D%C2%A0%E2%80%AE")]
    public void Percent_encoding_leaves_no_space_equals_sign_quote_or_look_alike(string text, string expected)
    {
        Assert.That(FieldText.PercentEncode(text), Is.EqualTo(expected));
    }

    [TestCase("250 2.0.0 Ok", "\"250 2.0.0 Ok\"")]
    [TestCase("ok\" uid=0 \\", "\"ok\\\" uid=0 \\\\\"")]
    [TestCase("a\u001b[2J\u202e\r\n", "\"a\\x1b[2J\\u202e\\x0d\\x0a\"")]
    public void Quoting_cannot_be_ended_early_and_shows_controls_as_escapes(string text, string expected)
    {
        Assert.That(FieldText.Quote(text), Is.EqualTo(expected));
    }
}
