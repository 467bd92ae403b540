using Interceptor.Core.Options;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Configuration;

namespace Interceptor.Tests.Daemon.Configuration;

/// <summary>Typed values bound from the unchanged keys, the keys derived from the records, and the loader's host name.</summary>
public class OptionsBinderTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-binder-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private string Write(string json)
    {
        var path = Path.Combine(_directory, "config.json");
        File.WriteAllText(path, json);
        return path;
    }

    private InterceptorOptions Load(string json, Func<string>? hostName = null) => ConfigurationLoader.Load(Write(json), new Dictionary<string, string?>(), hostName);

    private IReadOnlyList<string> Errors(string json) => Assert.Throws<ConfigurationException>(() => Load(json))!.Errors;

    /// <summary>The keys the loader knew as a hand-written list before they were derived from the records: none may go.</summary>
    [Test]
    public void Every_key_of_the_former_hand_written_list_is_still_known()
    {
        string[] former =
        [
            "Listen:Port", "Listen:MaxConnections", "Interception:Table", "Interception:VerifyIntervalSeconds", "Interception:RefusalSummarySeconds",
            "Relay:Mode", "Relay:HeloName", "Relay:ConnectTimeoutSeconds", "Relay:ReplyTimeoutSeconds", "Relay:DataReplyTimeoutSeconds",
            "Relay:ReuseConnections", "Relay:ReuseIdleSeconds", "Relay:ReuseMaxSeconds", "Relay:ReuseMaxMessages", "Relay:ReuseMaxIdlePerDestination",
            "Smtp:IdleTimeoutSeconds", "Smtp:SessionTimeoutSeconds", "Smtp:MaxCommandLineBytes", "Smtp:MaxDataLineBytes", "Smtp:CommandLineTimeoutSeconds",
            "Smtp:MinDataBytesPerSecond", "Smtp:SoftErrorLimit", "Smtp:HardErrorLimit", "Smtp:ErrorDelayMilliseconds", "State:Directory", "State:RetentionDays",
            "State:MaxBytes", "State:MinFreeBytes", "Suspension:UnsentLimit", "Control:SocketPath", "Control:AdminGroup", "Suspension:RefusalLimit",
            "Suspension:RefusalWindowMinutes", "Suspension:FailureRatioPercent", "Suspension:FailureMinimum", "Suspension:FailureWindowMinutes",
            "Alerts:Command", "Alerts:TimeoutSeconds", "Metrics:Listen", "Metrics:PerUser", "Trace:IncludeProcess", "Attribution:UnknownUids",
            "Interception:Ports:0", "Interception:ExemptUsers:0", "Interception:BlockedPorts:0", "Relay:PermittedLocalDestinations:1",
            "Routes:Users:alice:0", "Limits:Default:MessageSizeBytes", "Limits:Users:bob:Connections",
        ];

        Assert.That(former.Where(k => !OptionKeys.IsKnown(k, "1")), Is.Empty);
        Assert.That(OptionKeys.IsKnown("Smtp:IdleTimeout", "1"), Is.False, "the property's name is not a key; its key is");
        Assert.That(OptionKeys.IsKnown("Interception:Ports", "25"), Is.False, "a list is not a scalar");
    }

    [Test]
    public void Durations_sizes_and_rates_bind_from_their_keys_in_the_unit_the_key_names()
    {
        var options = Load("""
            {
              "Smtp": { "IdleTimeoutSeconds": 7, "ErrorDelayMilliseconds": 250, "MaxDataLineBytes": 4000, "MinDataBytesPerSecond": 512 },
              "State": { "RetentionDays": 3, "MaxBytes": 2097152 },
              "Suspension": { "RefusalWindowMinutes": 15 }
            }
            """);

        Assert.That(options.Smtp.IdleTimeout, Is.EqualTo(TimeSpan.FromSeconds(7)));
        Assert.That(options.Smtp.ErrorDelay, Is.EqualTo(TimeSpan.FromMilliseconds(250)));
        Assert.That(options.Smtp.MaxDataLine, Is.EqualTo(ByteSize.FromBytes(4000)));
        Assert.That(options.Smtp.MinDataRate, Is.EqualTo(DataRate.FromBytesPerSecond(512)));
        Assert.That(options.State.Retention, Is.EqualTo(TimeSpan.FromDays(3)));
        Assert.That(options.State.MaxSize.Bytes, Is.EqualTo(2097152));
        Assert.That(options.Suspension.RefusalWindow, Is.EqualTo(TimeSpan.FromMinutes(15)));
        Assert.That(options.Smtp.SessionTimeout, Is.EqualTo(TimeSpan.FromSeconds(3600)), "an unset key keeps its default");
    }

    [Test]
    public void The_data_rate_grace_and_the_total_idle_upstream_bound_are_keys_with_their_former_constants_as_defaults()
    {
        var defaults = Load("{}");
        var set = Load("""{ "Smtp": { "DataRateGraceSeconds": 5 }, "Relay": { "ReuseMaxIdleTotal": 50 } }""");

        Assert.That((defaults.Smtp.DataRateGrace, defaults.Relay.ReuseMaxIdleTotal), Is.EqualTo((TimeSpan.FromSeconds(30), 1000)));
        Assert.That((set.Smtp.DataRateGrace, set.Relay.ReuseMaxIdleTotal), Is.EqualTo((TimeSpan.FromSeconds(5), 50)));
        Assert.That(Errors("""{ "Smtp": { "DataRateGraceSeconds": 0 }, "Relay": { "ReuseMaxIdleTotal": 5 } }"""), Is.EqualTo(new[]
        {
            "Relay.ReuseMaxIdleTotal: must be at least Relay.ReuseMaxIdlePerDestination and at most 100000",
            "Smtp.DataRateGraceSeconds: must be 1-3600",
        }));
    }

    [Test]
    public void A_duration_too_long_for_a_TimeSpan_is_refused_by_range_not_a_crash()
    {
        Assert.That(Errors("""{ "State": { "RetentionDays": 2147483647 } }"""), Is.EqualTo(new[] { "State.RetentionDays: must be 2-3650 (quotas need the last day)" }));
    }

    [Test]
    public void A_session_timeout_beyond_what_a_timer_waits_is_refused_and_the_longest_transaction_adds_what_follows_the_session()
    {
        // Above 2^32 − 2 ms every session failed at its start; a huge number also binds as TimeSpan.MaxValue, which the
        // longest transaction's sum must never see. Up to the limit, long sessions stay valid, as before.
        Assert.That(Errors("""{ "Smtp": { "SessionTimeoutSeconds": 4294968 } }"""), Is.EqualTo(new[] { "Smtp.SessionTimeoutSeconds: must be at most 4294967 (49.7 days, the longest a timer waits)" }));
        Assert.That(Errors("""{ "Smtp": { "SessionTimeoutSeconds": 2147483647 } }"""), Is.EqualTo(new[] { "Smtp.SessionTimeoutSeconds: must be at most 4294967 (49.7 days, the longest a timer waits)" }));
        Assert.That(Load("""{ "Smtp": { "SessionTimeoutSeconds": 172800 }, "State": { "RetentionDays": 2 } }""").Smtp.SessionTimeout, Is.EqualTo(TimeSpan.FromDays(2)));
        Assert.That(new InterceptorOptions().LongestTransaction, Is.EqualTo(TimeSpan.FromSeconds(3600 + 120 + 600 + 900)));
    }

    /// <summary>The packaged configuration shows <c>"BlockedPorts": []</c> as the default; uncommented, it was an unknown key.</summary>
    [Test]
    public void An_empty_list_is_the_list_key_itself_and_gives_an_empty_list()
    {
        var options = Load("""{ "Interception": { "BlockedPorts": [], "ExemptUsers": [] }, "Relay": { "PermittedLocalDestinations": [] } }""");

        Assert.That(options.Interception.BlockedPorts, Is.Empty);
        Assert.That(options.Interception.ExemptUsers, Is.Empty);
        Assert.That(options.Relay.PermittedLocalDestinations, Is.Empty);
    }

    [Test]
    public void The_host_name_is_resolved_once_by_the_loader_and_only_when_asked_for_and_unset()
    {
        var calls = 0;
        string Resolve()
        {
            calls++;
            return "mx.example.net";
        }

        Assert.That(Load("{}").Relay.HeloName, Is.Empty, "no resolver: nothing looked up");
        Assert.That(Load("{}", Resolve).Relay.HeloName, Is.EqualTo("mx.example.net"));
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(Load("""{ "Relay": { "HeloName": "relay.example.org" } }""", Resolve).Relay.HeloName, Is.EqualTo("relay.example.org"));
        Assert.That(calls, Is.EqualTo(1), "a configured name needs no lookup");
        Assert.That(new RelayOptions().HeloName, Is.Empty, "no DNS lookup in the record's initializer");
    }

    /// <summary>check-config and rules load through DaemonSetup without relaying: the name stays unresolved, so no DNS was asked.</summary>
    [Test]
    public void The_commands_that_do_not_relay_load_without_resolving_the_host_name()
    {
        var (options, _) = DaemonSetup.Load(Write("""{ "Interception": { "ExemptUsers": ["root"] } }"""));

        Assert.That(options.Relay.HeloName, Is.Empty);
    }

    [Test]
    public void A_resolved_host_name_is_still_validated()
    {
        var error = Assert.Throws<ConfigurationException>(() => Load("{}", () => "bad name!"))!;

        Assert.That(error.Errors, Is.EqualTo(new[] { "Relay.HeloName: \"bad name!\" is not a host name" }));
    }

    /// <summary>The nft name rule and the socket path limit live in Netfilter and Linux; check-config reports them as before.</summary>
    [Test]
    public void Platform_limits_are_reported_with_the_key_and_the_former_text()
    {
        var longPath = "/run/" + new string('x', 120);

        Assert.That(Errors($$"""{ "Interception": { "Table": "bad-name" }, "Control": { "SocketPath": "{{longPath}}" } }"""), Is.EqualTo(new[]
        {
            "Interception.Table: \"bad-name\" is not a valid nft table name (letters, digits, _; at most 58, starting with a letter: the guard table adds \"_guard\")",
            "Control.SocketPath: longer than a Unix socket path may be (107 bytes)",
        }));
        Assert.That(OptionsValidator.Validate(new InterceptorOptions { Interception = new InterceptionOptions { Table = "bad-name" } }), Is.Empty,
            "Core knows no nft rule");
    }

    // Issue 16: Hold.* and Suspension.Action.
    [Test]
    public void Hold_defaults_keep_held_mail_under_the_state_directory_for_14_days_retried_48_hours_and_refuse_suspended_users()
    {
        var options = Load("{}");
        Assert.That(options.Hold.DirectoryFor(options.State), Is.EqualTo("/var/lib/smtp-interceptor/held"));
        Assert.That(options.Hold.Retention, Is.EqualTo(TimeSpan.FromDays(14)));
        Assert.That(options.Hold.ReleaseRetry, Is.EqualTo(TimeSpan.FromHours(48)));
        Assert.That(options.Suspension.Action, Is.EqualTo(SuspensionAction.Refuse));
    }

    [Test]
    public void Hold_keys_bind_in_the_unit_their_name_says_hours_included()
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
    public void Bad_hold_values_are_refused_naming_the_key(string json, string error)
    {
        Assert.That(Errors(json), Has.Some.StartsWith(error));
    }
}
