using System.Text.Json;
using Interceptor.Smtp.Pool;

namespace Interceptor.Tests.Smtp.Pool;

public class RelayCredentialsTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-creds-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private string Write(string text, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
    {
        var path = Path.Combine(_directory, "relay-credentials");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    [Test]
    public void Each_user_gets_their_own_line_and_everyone_else_the_star_line()
    {
        var credentials = RelayCredentials.Load(Write("# site logins\nalice alice@relay s3cret-A\n\n* shared@relay s3cret-star\r\nbob\tbob@relay s3cret-B\n"));

        Assert.That(credentials.For("alice")!.RevealLogin(), Is.EqualTo("alice@relay"));
        Assert.That(credentials.For("alice")!.RevealPassword(), Is.EqualTo("s3cret-A"));
        Assert.That(credentials.For("bob")!.RevealPassword(), Is.EqualTo("s3cret-B"), "tabs separate fields too");
        Assert.That(credentials.For("carol")!.RevealLogin(), Is.EqualTo("shared@relay"));
        Assert.That(credentials.Users, Is.EqualTo(new[] { "alice", "bob" }));
    }

    [Test]
    public void Without_a_star_line_a_user_without_a_line_has_no_credentials()
    {
        Assert.That(RelayCredentials.Load(Write("alice a pw\n")).For("bob"), Is.Null);
    }

    [TestCase(UnixFileMode.GroupRead)]
    [TestCase(UnixFileMode.OtherRead)]
    [TestCase(UnixFileMode.GroupWrite)]
    public void A_file_others_may_touch_is_refused_naming_the_file_and_its_mode(UnixFileMode extra)
    {
        var path = Write("alice a pw\n", UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);

        var error = Assert.Throws<RelayCredentialsException>(() => RelayCredentials.Load(path))!;

        Assert.That(error.Message, Does.StartWith(path + ": mode 06"));
        Assert.That(error.Message, Does.Contain("chmod 600"));
    }

    [Test]
    public void A_symbolic_link_is_refused()
    {
        var target = Write("alice a pw\n");
        var link = Path.Combine(_directory, "link");
        File.CreateSymbolicLink(link, target);

        Assert.That(() => RelayCredentials.Load(link), Throws.TypeOf<RelayCredentialsException>().With.Message.Contains("symbolic link"));
    }

    [Test]
    public void A_bad_line_is_named_by_number_and_never_shown()
    {
        var path = Write("alice a pw\nbob only-two-fields-and-a-secret-pw\n");

        var error = Assert.Throws<RelayCredentialsException>(() => RelayCredentials.Load(path))!;

        Assert.That(error.Message, Does.Contain("line 2"));
        Assert.That(error.Message, Does.Not.Contain("secret"));
    }

    [Test]
    public void A_second_line_for_a_user_is_refused()
    {
        Assert.That(() => RelayCredentials.Load(Write("alice a pw\nalice b pw2\n")), Throws.TypeOf<RelayCredentialsException>().With.Message.Contains("line 2: a second line for user alice"));
    }

    [Test]
    public void A_credential_prints_and_serialises_without_its_login_or_password()
    {
        var credential = RelayCredentials.Load(Write("alice alice-login s3cret-pw\n")).For("alice")!;

        var printed = $"{credential} {JsonSerializer.Serialize(credential)}";

        Assert.That(printed, Does.Not.Contain("s3cret-pw").And.Not.Contain("alice-login"));
        Assert.That(credential.ToString(), Does.Contain("redacted"));
    }

    [Test]
    public void Credentials_are_equal_by_login_and_password_only()
    {
        var credentials = RelayCredentials.Load(Write("alice same pw\nbob same pw\ncarol same other\n"));

        Assert.That(credentials.For("alice"), Is.EqualTo(credentials.For("bob")));
        Assert.That(credentials.For("alice"), Is.Not.EqualTo(credentials.For("carol")));
    }
}
