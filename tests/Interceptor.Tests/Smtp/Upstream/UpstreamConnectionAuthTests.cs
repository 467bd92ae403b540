using System.Text;
using Interceptor.Smtp.Pool;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.TestDoubles;
using static Interceptor.Tests.Smtp.Upstream.UpstreamConnectionDialogueTests;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>AUTH PLAIN and LOGIN on <see cref="UpstreamConnection"/>, and the rules that keep a login off a plain connection.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public class UpstreamConnectionAuthTests
{
    private static readonly RelayCredential Alice = RelayCredentials.Parse("test", "alice alice@site.test s3cret\n").For("alice")!;

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    [Test]
    public async Task AUTH_PLAIN_sends_the_login_and_password_as_one_initial_response()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "AUTH PLAIN LOGIN")
            .Client("AUTH PLAIN " + B64("\0alice@site.test\0s3cret")).Server("235 2.7.0 Authentication successful"));
        await using var connection = await OpenAsync(connector);

        var reply = await connection.AuthenticateAsync(Alice, CancellationToken.None);

        Assert.That(reply.Code, Is.EqualTo(235));
        connector.AssertPlayedOut();
    }

    [Test]
    public async Task AUTH_LOGIN_is_used_when_it_is_the_only_mechanism_offered_and_a_535_comes_back_as_the_reply()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "AUTH=LOGIN")
            .Client("AUTH LOGIN").Server("334 VXNlcm5hbWU6")
            .Client(B64("alice@site.test")).Server("334 UGFzc3dvcmQ6")
            .Client(B64("s3cret")).Server("535 5.7.8 Error: authentication failed"));
        await using var connection = await OpenAsync(connector);

        var reply = await connection.AuthenticateAsync(Alice, CancellationToken.None);

        Assert.That(reply.ToWire(), Is.EqualTo("535 5.7.8 Error: authentication failed\r\n"));
        connector.AssertPlayedOut();
    }

    [Test]
    public void The_mechanisms_are_read_from_either_spelling_of_the_AUTH_line()
    {
        Assert.That(UpstreamConnection.AuthMechanisms(["mx.test", "PIPELINING", "AUTH PLAIN login"]), Is.EquivalentTo(new[] { "PLAIN", "LOGIN" }));
        Assert.That(UpstreamConnection.AuthMechanisms(["mx.test", "AUTH=LOGIN"]), Is.EquivalentTo(new[] { "LOGIN" }));
        Assert.That(UpstreamConnection.AuthMechanisms(["AUTH PLAIN", "SIZE 10"]), Is.Empty, "the first line is the server's name");
    }

    [Test]
    public void A_login_is_never_sent_over_a_connection_without_TLS()
    {
        // The dialogue ends after EHLO: an AUTH command would be a deviation.
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "AUTH PLAIN"));

        Assert.That(async () => await UpstreamConnection.OpenAsync(Mx, Settings, connector, Alice, CancellationToken.None),
            Throws.InstanceOf<UpstreamUnavailableException>().With.Message.Contains("never sent in clear text"));
        Assert.That(connector.Connections.Single().Replay.Deviation, Is.Null);
    }

    [Test]
    public void Required_TLS_without_STARTTLS_on_offer_fails_the_relay()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "PIPELINING"));
        var required = Settings with { VerifiedTls = new UpstreamTlsVerification("relay.example.net", null) };

        Assert.That(async () => await UpstreamConnection.OpenAsync(Mx, required, connector, null, CancellationToken.None),
            Throws.InstanceOf<UpstreamUnavailableException>().With.Message.Contains("offers no STARTTLS, and TLS is required"));
    }

    [Test]
    public async Task Required_TLS_with_STARTTLS_refused_is_a_refusal_at_that_step()
    {
        var connector = new ScriptedConnector(ScriptedDialogue.Greeted(Helo, "STARTTLS").Client("STARTTLS").Server("454 4.7.0 TLS not available"));
        var required = Settings with { VerifiedTls = new UpstreamTlsVerification("relay.example.net", null) };

        var opening = await UpstreamConnection.OpenAsync(Mx, required, connector, null, CancellationToken.None);

        Assert.That(opening.Connection, Is.Null);
        Assert.That(opening.Step, Is.EqualTo(UpstreamOpeningStep.StartTls));
        Assert.That(opening.Refusal!.Code, Is.EqualTo(454));
    }
}
