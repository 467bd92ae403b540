using System.Text.Json;
using Interceptor.Smtp.Pool;

namespace Interceptor.Tests.Smtp.Pool;

/// <summary>Relay.CredentialsFile's lines (the file's own checks are PrivateFile's: PrivateFileTests).</summary>
public class RelayCredentialsTests
{
    private const string File = "/etc/smtp-interceptor/relay-credentials";

    [Test]
    public void Each_user_gets_their_own_line_and_everyone_else_the_star_line()
    {
        var credentials = RelayCredentials.Parse(File, "# site logins\nalice alice@relay s3cret-A\n\n* shared@relay s3cret-star\r\nbob\tbob@relay s3cret-B\n");

        Assert.That(credentials.For("alice")!.RevealLogin(), Is.EqualTo("alice@relay"));
        Assert.That(credentials.For("alice")!.RevealPassword(), Is.EqualTo("s3cret-A"));
        Assert.That(credentials.For("bob")!.RevealPassword(), Is.EqualTo("s3cret-B"), "tabs separate fields too");
        Assert.That(credentials.For("carol")!.RevealLogin(), Is.EqualTo("shared@relay"));
        Assert.That(credentials.Users, Is.EqualTo(new[] { "alice", "bob" }));
    }

    [Test]
    public void Without_a_star_line_a_user_without_a_line_has_no_credentials()
    {
        Assert.That(RelayCredentials.Parse(File, "alice a pw\n").For("bob"), Is.Null);
    }

    [Test]
    public void A_bad_line_is_named_by_number_and_never_shown()
    {
        var error = Assert.Throws<RelayCredentialsException>(() => RelayCredentials.Parse(File, "alice a pw\nbob only-two-fields-and-a-secret-pw\n"))!;

        Assert.That(error.Message, Does.Contain("line 2"));
        Assert.That(error.Message, Does.Not.Contain("secret"));
    }

    [Test]
    public void A_second_line_for_a_user_is_refused()
    {
        Assert.That(() => RelayCredentials.Parse(File, "alice a pw\nalice b pw2\n"), Throws.TypeOf<RelayCredentialsException>().With.Message.Contains("line 2: a second line for user alice"));
    }

    [Test]
    public void A_credential_prints_and_serialises_without_its_login_or_password()
    {
        var credential = RelayCredentials.Parse(File, "alice alice-login s3cret-pw\n").For("alice")!;

        var printed = $"{credential} {JsonSerializer.Serialize(credential)}";

        Assert.That(printed, Does.Not.Contain("s3cret-pw").And.Not.Contain("alice-login"));
        Assert.That(credential.ToString(), Does.Contain("redacted"));
    }

    [Test]
    public void Credentials_are_equal_by_login_and_password_only()
    {
        var credentials = RelayCredentials.Parse(File, "alice same pw\nbob same pw\ncarol same other\n");

        Assert.That(credentials.For("alice"), Is.EqualTo(credentials.For("bob")));
        Assert.That(credentials.For("alice"), Is.Not.EqualTo(credentials.For("carol")));
    }
}
