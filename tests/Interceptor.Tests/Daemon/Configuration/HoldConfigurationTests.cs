using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;

namespace Interceptor.Tests.Daemon.Configuration;

/// <summary>Hold.* and Suspension.Action: bound from their keys (hours in ReleaseRetryHours), checked, defaulted.</summary>
public class HoldConfigurationTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-hold-config-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private InterceptorOptions Load(string json)
    {
        var path = Path.Combine(_directory, "config.json");
        File.WriteAllText(path, json);
        return ConfigurationLoader.Load(path, new Dictionary<string, string?>());
    }

    [Test]
    public void The_defaults_keep_held_mail_under_the_state_directory_for_14_days_retried_48_hours_and_refuse_suspended_users()
    {
        var options = Load("{}");
        Assert.That(options.Hold.DirectoryFor(options.State), Is.EqualTo("/var/lib/smtp-interceptor/held"));
        Assert.That(options.Hold.Retention, Is.EqualTo(TimeSpan.FromDays(14)));
        Assert.That(options.Hold.ReleaseRetry, Is.EqualTo(TimeSpan.FromHours(48)));
        Assert.That(options.Suspension.Action, Is.EqualTo(SuspensionAction.Refuse));
    }

    [Test]
    public void The_keys_bind_in_the_unit_their_name_says()
    {
        var options = Load("""{ "Hold": { "Directory": "/srv/held", "RetentionDays": 3, "ReleaseRetryHours": 6 }, "Suspension": { "Action": "Hold" } }""");
        Assert.That(options.Hold.DirectoryFor(options.State), Is.EqualTo("/srv/held"));
        Assert.That(options.Hold.Retention, Is.EqualTo(TimeSpan.FromDays(3)));
        Assert.That(options.Hold.ReleaseRetry, Is.EqualTo(TimeSpan.FromHours(6)));
        Assert.That(options.Suspension.Action, Is.EqualTo(SuspensionAction.Hold));
    }

    [TestCase("""{ "Hold": { "Directory": "held" } }""", "Hold.Directory: must be empty (State.Directory/held) or an absolute path")]
    [TestCase("""{ "Hold": { "Directory": "/var/lib/smtp-interceptor" } }""", "Hold.Directory: must not be State.Directory itself")]
    [TestCase("""{ "Hold": { "RetentionDays": 0 } }""", "Hold.RetentionDays: must be 1-3650")]
    [TestCase("""{ "Hold": { "ReleaseRetryHours": 0 } }""", "Hold.ReleaseRetryHours: must be 1-720")]
    [TestCase("""{ "Hold": { "ReleaseRetryHours": 721 } }""", "Hold.ReleaseRetryHours: must be 1-720")]
    public void Bad_values_are_refused_naming_the_key(string json, string error)
    {
        var errors = Assert.Throws<ConfigurationException>(() => Load(json))!.Errors;
        Assert.That(errors, Has.Some.StartsWith(error));
    }
}
