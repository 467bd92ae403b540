using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;

namespace Interceptor.Tests.Daemon;

public class ConfigurationLoaderTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-config-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private InterceptorOptions Load(string json, Dictionary<string, string?>? environment = null)
    {
        var path = Path.Combine(_directory, "config.json");
        File.WriteAllText(path, json);
        return ConfigurationLoader.Load(path, environment ?? []);
    }

    private IReadOnlyList<string> Errors(string json) =>
        Assert.Throws<ConfigurationException>(() => Load(json))!.Errors;

    [Test]
    public void An_empty_object_gives_the_documented_defaults()
    {
        var options = Load("{}");

        Assert.That(options.Listen.Port, Is.EqualTo(24));
        Assert.That(options.Interception.Ports, Is.EqualTo(new[] { 25 }));
        Assert.That(options.Interception.ExemptUsers, Is.EqualTo(new[] { "root" }));
        Assert.That(options.Interception.Table, Is.EqualTo("smtp_interceptor"));
        Assert.That(options.Relay.Mode, Is.EqualTo(RelayMode.OriginalDestination));
        Assert.That(options.Limits.Default.RecipientsPerMessage, Is.EqualTo(100));
    }

    [Test]
    public void Comments_are_allowed()
    {
        Assert.That(Load("{ // a comment\n \"Listen\": { \"Port\": 2600 } /* more */ }").Listen.Port, Is.EqualTo(2600));
    }

    [Test]
    public void A_configured_list_replaces_the_default_instead_of_appending()
    {
        var options = Load("""{ "Interception": { "Ports": [2525, 25], "ExemptUsers": ["postfix"] } }""");

        Assert.That(options.Interception.Ports, Is.EqualTo(new[] { 2525, 25 }));
        Assert.That(options.Interception.ExemptUsers, Is.EqualTo(new[] { "postfix" }));
    }

    [Test]
    public void Per_user_limits_override_the_default_field_by_field()
    {
        var options = Load("""{ "Limits": { "Default": { "MessageSizeBytes": 5000000 }, "Users": { "alice": { "RecipientsPerMessage": 5 } } } }""");

        Assert.That(options.Limits.For("alice").RecipientsPerMessage, Is.EqualTo(5));
        Assert.That(options.Limits.For("alice").MessageSizeBytes, Is.EqualTo(5000000));
        Assert.That(options.Limits.For("bob").RecipientsPerMessage, Is.EqualTo(100));
    }

    [Test]
    public void Environment_variables_override_the_file()
    {
        var options = Load("""{ "Relay": { "HeloName": "file.example" } }""", new() { ["SMTPI_Relay__HeloName"] = "env.example", ["OTHER"] = "x" });

        Assert.That(options.Relay.HeloName, Is.EqualTo("env.example"));
    }

    [Test]
    public void An_unknown_key_is_named()
    {
        Assert.That(Errors("""{ "Relay": { "Mdoe": "Smarthost" } }"""), Has.Some.StartsWith("Relay.Mdoe: unknown key"));
    }

    [Test]
    public void A_non_number_is_named()
    {
        Assert.That(Errors("""{ "Listen": { "Port": "ten" } }"""), Has.Some.StartsWith("Listen.Port: \"ten\" is not a number"));
    }

    [Test]
    public void A_bad_list_item_is_named_with_its_index()
    {
        Assert.That(Errors("""{ "Interception": { "Ports": [25, 70000] } }"""), Has.Some.StartsWith("Interception.Ports[1]: 70000 is not a TCP port"));
    }

    [Test]
    public void A_stray_log_group_beyond_16_bits_is_named()
    {
        Assert.That(Errors("""{ "Interception": { "StrayLogGroup": 70000 } }"""), Has.Some.EqualTo("Interception.StrayLogGroup: 70000 is not an NFLOG group (1-65535, or 0 for none)"));
        Assert.That(Errors("""{ "Interception": { "StrayLogGroup": -1 } }"""), Has.Some.StartsWith("Interception.StrayLogGroup: -1 is not an NFLOG group"));
    }

    [Test]
    public void An_unknown_relay_mode_is_named()
    {
        Assert.That(Errors("""{ "Relay": { "Mode": "Nowhere" } }"""), Has.Some.StartsWith("Relay.Mode: \"Nowhere\" is not one of OriginalDestination"));
    }

    [Test]
    public void Unknown_uids_are_refused_unless_configured_and_a_bad_value_is_named()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Load("{}").Attribution.UnknownUids, Is.EqualTo(UnknownUidHandling.Refuse));
            Assert.That(Load("""{ "Attribution": { "UnknownUids": "Relay" } }""").Attribution.UnknownUids, Is.EqualTo(UnknownUidHandling.Relay));
            Assert.That(Errors("""{ "Attribution": { "UnknownUids": "Maybe" } }"""), Has.Some.StartsWith("Attribution.UnknownUids: \"Maybe\" is not one of Refuse, Relay"));
        });
    }

    [Test]
    public void Intercepting_the_listen_port_is_refused()
    {
        Assert.That(Errors("""{ "Interception": { "Ports": [24] } }"""), Has.Some.Contains("would loop"));
    }

    [Test]
    public void A_table_name_that_could_inject_nft_syntax_is_refused()
    {
        Assert.That(Errors("""{ "Interception": { "Table": "x }\nflush ruleset" } }"""), Has.Some.StartsWith("Interception.Table:"));
    }

    [Test]
    public void A_bad_permitted_destination_is_named()
    {
        Assert.That(Errors("""{ "Relay": { "PermittedLocalDestinations": ["localhost"] } }"""), Has.Some.StartsWith("Relay.PermittedLocalDestinations[0]:"));
    }

    [Test]
    public void Upstream_reuse_is_on_by_default_and_each_bound_is_configurable_and_checked()
    {
        var defaults = Load("{}").Relay;
        Assert.That((defaults.ReuseConnections, defaults.ReuseIdleTime.TotalSeconds, defaults.ReuseMaxAge.TotalSeconds, defaults.ReuseMaxMessages, defaults.ReuseMaxIdlePerDestination), Is.EqualTo((true, 2, 300, 100, 20)));

        var set = Load("""{ "Relay": { "ReuseConnections": false, "ReuseIdleSeconds": 5, "ReuseMaxSeconds": 60, "ReuseMaxMessages": 10, "ReuseMaxIdlePerDestination": 3 } }""").Relay;
        Assert.That((set.ReuseConnections, set.ReuseIdleTime.TotalSeconds, set.ReuseMaxAge.TotalSeconds, set.ReuseMaxMessages, set.ReuseMaxIdlePerDestination), Is.EqualTo((false, 5, 60, 10, 3)));

        Assert.That(Errors("""{ "Relay": { "ReuseIdleSeconds": 0, "ReuseMaxMessages": -1, "ReuseConnections": "maybe" } }"""),
            Has.Some.StartsWith("Relay.ReuseIdleSeconds: must be 1-300").And.Some.StartsWith("Relay.ReuseMaxMessages:").And.Some.StartsWith("Relay.ReuseConnections:"));
    }

    [Test]
    public void Broken_json_is_reported_with_the_file()
    {
        Assert.That(Errors("{ \"Listen\": "), Has.Some.Contains("not valid JSON"));
    }

    [Test]
    public void A_missing_file_is_reported()
    {
        var error = Assert.Throws<ConfigurationException>(() => ConfigurationLoader.Load(Path.Combine(_directory, "nope.json"), new Dictionary<string, string?>()));

        Assert.That(error!.Errors.Single(), Does.Contain("no such configuration file"));
    }

    [Test]
    public void Every_problem_is_reported_at_once()
    {
        Assert.That(Errors("""{ "Listen": { "Port": 0 }, "Smtp": { "MaxCommandLineBytes": 10 } }"""), Has.Count.EqualTo(2));
    }
}
