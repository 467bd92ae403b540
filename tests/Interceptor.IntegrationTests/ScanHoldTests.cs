using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// Issue 16, scanning and hold-and-release together with a real Debian spamd: a message scored into the hold band is
/// held (never at the MX), listed with its score, released and then received by the fake MX exactly once with one trace
/// header; another held one is deleted and never delivered. The band is put around GTUBE's fixed score (1000) so the
/// test does not depend on SpamAssassin's rule weights.
/// </summary>
[TestFixture]
[CancelAfter(300_000)]
public sealed class ScanHoldTests
{
    private const string Mx = "127.0.0.2:25";
    private const string From = "alice@client.test";
    private const string To = "rcpt@example.test";
    private const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
    private const string HeldPrefix = "250 2.0.0 held for review as ";

    private static DaemonConfig HoldBand() => new()
    {
        Settings = new Dictionary<string, JsonNode?>
        {
            ["Scan.Engine"] = "Spamd",
            ["Scan.Endpoint"] = Spamd.Endpoint,
            ["Scan.HoldScore"] = 500,
            ["Scan.RejectScore"] = 2000,
        },
    };

    private static async Task<string> HoldAsync(Scenario s, string marker)
    {
        var message = Encoding.ASCII.GetBytes($"From: <{From}>\r\nTo: <{To}>\r\nSubject: {marker}\r\n\r\n{Gtube}\r\n{marker}\r\n");
        var result = await Clients.DialogAsync(s.Ns, TestUsers.Alice, s.Dir, SmtpDialog.Transaction(Mx, From, [To], Clients.WriteStuffedBody(s.Dir, message)));
        var reply = result.Reply("BODY")?.Raw ?? "";
        Assert.That(reply, Does.StartWith(HeldPrefix), result.Describe() + s.Describe());
        return reply[HeldPrefix.Length..].Trim();
    }

    private static async Task<JsonElement> CliJsonAsync(Scenario s, params string[] arguments)
    {
        var result = await CliAsync(s.Ns, s.RequireDaemon, [.. arguments, "--json"]);
        Assert.That(result.Succeeded, Is.True, result.Describe());
        return JsonDocument.Parse(result.Stdout).RootElement.Clone();
    }

    private static JsonElement? Listed(JsonElement held, string id) =>
        held.GetProperty("messages").EnumerateArray().Cast<JsonElement?>().FirstOrDefault(m => m!.Value.GetProperty("id").GetString() == id);

    [Test]
    public async Task A_message_in_the_hold_band_is_held_listed_with_its_score_released_once_and_another_deleted()
    {
        await using var s = await Scenario.StartAsync(config: HoldBand());
        await using var spamd = await Spamd.StartAsync(s.Ns, s.Dir);
        string Context() => "\n" + s.Describe() + "\n" + spamd.Transcript();

        var kept = await HoldAsync(s, "band-kept");
        var dropped = await HoldAsync(s, "band-dropped");
        Assert.That(s.RequireMx.Messages(), Is.Empty, "nothing held reached the MX" + Context());

        var held = await CliJsonAsync(s, "held");
        Assert.That(Listed(held, kept), Is.Not.Null, held.ToString());
        Assert.That(Listed(held, kept)!.Value.ToString(), Does.Match(@"""score"":\s*10\d\d").And.Contain("GTUBE"), "the record carries score and symbols: " + held);

        var delete = await CliAsync(s.Ns, s.RequireDaemon, "delete", dropped);
        var release = await CliAsync(s.Ns, s.RequireDaemon, "release", kept);
        Assert.That(delete.Succeeded && release.Succeeded, Is.True, delete.Describe() + release.Describe());

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!s.RequireMx.Messages().Any(m => m.Text.Contains("band-kept", StringComparison.Ordinal)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        await Task.Delay(1000);
        var delivered = s.RequireMx.Messages();
        Assert.Multiple(() =>
        {
            Assert.That(delivered.Count(m => m.Text.Contains("band-kept", StringComparison.Ordinal)), Is.EqualTo(1), "released: delivered exactly once" + Context());
            Assert.That(delivered.Any(m => m.Text.Contains("band-dropped", StringComparison.Ordinal)), Is.False, "deleted: never delivered" + Context());
            var text = delivered.Single(m => m.Text.Contains("band-kept", StringComparison.Ordinal)).Text;
            Assert.That(text.Split("X-Interceptor-Origin:").Length - 1, Is.EqualTo(1), "one trace header: " + text);
        });
        var after = await CliJsonAsync(s, "held");
        Assert.That(Listed(after, dropped), Is.Null, "delete removed it: " + after);
    }
}
