using System.Text;
using Interceptor.Daemon.Control;

namespace Interceptor.Tests.Daemon.Control;

/// <summary>Request lines as the daemon reads them (the command line's side: CommandLineDefinitionTests).</summary>
[TestFixture]
public sealed class ControlRequestTests
{
    private static ControlRequest Parse(string json) => ControlRequest.Parse(Encoding.UTF8.GetBytes(json));

    private static string ParseError(string json) =>
        Assert.Throws<ControlException>(() => Parse(json))!.Message;

    [Test]
    public void A_full_request_is_read_with_every_field()
    {
        var request = Parse("""{"verb":"log","user":"alice","since":"1h","limit":20}""");

        Assert.That(request, Is.EqualTo(new ControlRequest { Verb = "log", User = "alice", Since = "1h", Limit = 20 }));
    }

    [TestCase("""{"verb":"status"}""")]
    [TestCase("""{"verb":"status","user":null}""")]
    [TestCase(""" { "verb" : "limits" , "user" : "1001" } """)]
    [TestCase("""{"verb":"block","user":"alice","reason":"spam wave (ticket 42)"}""")]
    [TestCase("""{"verb":"unblock","user":"alice"}""")]
    [TestCase("""{"verb":"users","since":"2d","limit":10000}""")]
    [TestCase("""{"verb":"domains"}""")]
    [TestCase("""{"verb":"domains","user":"alice","check":true}""")]
    public void Valid_requests_parse(string json)
    {
        Assert.That(() => Parse(json), Throws.Nothing);
    }

    [TestCase("not json", "not a valid JSON request object")]
    [TestCase("[]", "not a valid JSON request object")]
    [TestCase("null", "not a valid JSON request object")]
    [TestCase("""{"verb":"status","usr":"alice"}""", "not a valid JSON request object")]
    [TestCase("""{"verb":"shutdown"}""", "unknown verb \"shutdown\"; known: status, users, log, block, unblock, limits")]
    [TestCase("""{}""", "unknown verb \"\"")]
    [TestCase("""{"verb":"block","user":"alice"}""", "block needs --reason TEXT")]
    [TestCase("""{"verb":"block","reason":"x"}""", "block needs a user")]
    [TestCase("""{"verb":"unblock"}""", "unblock needs a user")]
    [TestCase("""{"verb":"unblock","user":"alice","reason":"x"}""", "unblock takes no reason")]
    [TestCase("""{"verb":"status","user":"alice"}""", "status takes no user")]
    [TestCase("""{"verb":"limits","since":"1h"}""", "limits takes no --since")]
    [TestCase("""{"verb":"block","user":"a","reason":"x","limit":3}""", "block takes no --limit")]
    [TestCase("""{"verb":"log","since":"1x"}""", "--since: \"1x\" is not a duration")]
    [TestCase("""{"verb":"log","limit":0}""", "--limit: 0 is not between 1 and 10000")]
    [TestCase("""{"verb":"log","limit":10001}""", "--limit: 10001 is not between 1 and 10000")]
    [TestCase("""{"verb":"log","user":"a\nb"}""", "the user must be a name or a numeric uid")]
    [TestCase("""{"verb":"status","check":true}""", "status takes no --check")]
    [TestCase("""{"verb":"domains","since":"1h"}""", "domains takes no --since")]
    [TestCase("""{"verb":"domains","limit":5}""", "domains takes no --limit")]
    [TestCase("""{"verb":"domains","reason":"x"}""", "domains takes no reason")]
    public void Invalid_requests_say_what_is_wrong(string json, string expected)
    {
        Assert.That(ParseError(json), Does.Contain(expected));
    }

    [TestCase("spam\r\n250 ok")]
    [TestCase("tab\there")]
    [TestCase("caf\u00e9")]
    [TestCase("   ")]
    public void A_block_reason_must_be_one_line_of_printable_ascii(string reason)
    {
        var request = new ControlRequest { Verb = "block", User = "alice", Reason = reason };

        var error = Assert.Throws<ControlException>(request.Validate)!;

        Assert.That(error.Kind, Is.EqualTo(ControlErrors.BadRequest));
    }

    [Test]
    public void A_block_reason_longer_than_200_characters_is_refused()
    {
        Assert.That(
            () => new ControlRequest { Verb = "block", User = "a", Reason = new string('x', 201) }.Validate(),
            Throws.TypeOf<ControlException>().With.Message.Contains("at most 200 characters"));
        Assert.That(() => new ControlRequest { Verb = "block", User = "a", Reason = new string('x', 200) }.Validate(), Throws.Nothing);
    }

    [Test]
    public void A_request_is_written_without_its_unset_fields()
    {
        var json = System.Text.Json.JsonSerializer.Serialize(new ControlRequest { Verb = "status" }, ControlJson.Strict);

        Assert.That(json, Is.EqualTo("""{"verb":"status"}"""));
    }
}
