using System.Text;
using Interceptor.Core.Options;
using Interceptor.Daemon.Configuration;
using Microsoft.Extensions.Configuration;

namespace Interceptor.Tests.Daemon;

/// <summary>
/// Issue 15's keys: read by the binder, known to the loader (a misspelt field is an unknown key) and validated with the
/// key named.
/// </summary>
public class RelayPoolConfigurationTests
{
    private string _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = Directory.CreateTempSubdirectory("smtpi-pool-config-").FullName;

    [TearDown]
    public void DeleteDirectory() => Directory.Delete(_directory, recursive: true);

    private InterceptorOptions Load(string json)
    {
        var path = Path.Combine(_directory, "config.json");
        File.WriteAllText(path, json);
        return ConfigurationLoader.Load(path, new Dictionary<string, string?>());
    }

    private IReadOnlyList<string> Errors(string json) => Assert.Throws<ConfigurationException>(() => Load(json))!.Errors;

    /// <summary>The binder alone, as the loader will use it once the keys are known.</summary>
    private static (InterceptorOptions Options, List<string> Errors) Bind(string json)
    {
        var root = new ConfigurationBuilder().AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json))).Build();
        var errors = new List<string>();
        return (OptionsBinder.Bind(root, errors), errors);
    }

    private static InterceptorOptions BindClean(string json)
    {
        var (options, errors) = Bind(json);
        Assert.That(errors, Is.Empty);
        return options;
    }

    private static IReadOnlyList<string> Validate(InterceptorOptions options) => OptionsValidator.Validate(options);

    private const string TwoRelays = """
        "Smarthosts": [
          { "Name": "relay1", "Host": "relay1.example.net", "EgressAddress": "198.51.100.10" },
          { "Name": "relay2", "Host": "relay2.example.net", "Port": 2525, "Role": "Standby", "Tls": "Opportunistic",
            "TlsName": "mx.example.net", "CaFile": "/etc/ssl/relay-ca.pem", "EgressAddress": "2001:db8::10", "HeloName": "web1.example.org" }
        ]
        """;

    [Test]
    public void The_defaults_are_the_issues()
    {
        var options = Load("{}");

        Assert.That(options.Relay.Mode, Is.EqualTo(RelayMode.OriginalDestination));
        Assert.That(options.Relay.Smarthosts, Is.Empty);
        Assert.That(options.Relay.CredentialsFile, Is.Empty);
        Assert.That(options.Burn.Patterns.Select(p => p.Label), Is.EqualTo(new[] { "microsoft-network-block", "microsoft-banned-ip", "gmail-unsolicited-rate", "yahoo-tss04", "dnsbl-rejection" }));
        Assert.That(options.Burn.Threshold, Is.EqualTo(5));
        Assert.That(options.Burn.Window, Is.EqualTo(TimeSpan.FromMinutes(60)));
        Assert.That((options.Burn.HostMinUsers, options.Burn.HostMinNetworks, options.Burn.RelayMinUsers), Is.EqualTo((2, 2, 2)));
        Assert.That(options.Burn.DnsblZones, Is.EqualTo(new[] { "zen.spamhaus.org" }));
        Assert.That(options.Burn.DnsServer, Is.Empty);
        Assert.That(options.Burn.CheckInterval, Is.EqualTo(TimeSpan.FromMinutes(60)));
        Assert.That(options.Burn.ReturnAfter, Is.EqualTo(TimeSpan.FromDays(21)));
        Assert.That(options.Burn.ReturnCleanChecks, Is.EqualTo(3));
    }

    [Test]
    public void Every_key_is_read()
    {
        var options = BindClean($$"""
            { "Relay": { "CredentialsFile": "/etc/smtp-interceptor/relay-credentials", {{TwoRelays}} },
              "Burn": { "Patterns": [ { "Label": "custom", "Pattern": "go away" } ], "Threshold": 3, "WindowMinutes": 10,
                        "DnsblZones": ["bl.example.org", "zen.example.org"], "DnsServer": "127.0.0.53:5353", "CheckIntervalMinutes": 15,
                        "HostAddress": "203.0.113.5", "ReturnAfterDays": 7, "ReturnCleanChecks": 2,
                        "HostMinUsers": 3, "HostMinNetworks": 4, "RelayMinUsers": 1 } }
            """);

        Assert.That(options.Relay.CredentialsFile, Is.EqualTo("/etc/smtp-interceptor/relay-credentials"));
        Assert.That(options.Relay.Smarthosts[0], Is.EqualTo(new SmarthostOptions { Name = "relay1", Host = "relay1.example.net", EgressAddress = "198.51.100.10" }));
        Assert.That(options.Relay.Smarthosts[1], Is.EqualTo(new SmarthostOptions
        {
            Name = "relay2", Host = "relay2.example.net", Port = 2525, Role = SmarthostRole.Standby, Tls = SmarthostTls.Opportunistic,
            TlsName = "mx.example.net", CaFile = "/etc/ssl/relay-ca.pem", EgressAddress = "2001:db8::10", HeloName = "web1.example.org",
        }));
        Assert.That(options.Burn.Patterns, Is.EqualTo(new[] { new BurnPatternOptions { Label = "custom", Pattern = "go away" } }), "a configured list replaces the defaults");
        Assert.That(options.Burn, Is.EqualTo(new BurnOptions
        {
            Patterns = options.Burn.Patterns, Threshold = 3, Window = TimeSpan.FromMinutes(10), DnsblZones = options.Burn.DnsblZones, DnsServer = "127.0.0.53:5353",
            CheckInterval = TimeSpan.FromMinutes(15), HostAddress = "203.0.113.5", ReturnAfter = TimeSpan.FromDays(7), ReturnCleanChecks = 2,
            HostMinUsers = 3, HostMinNetworks = 4, RelayMinUsers = 1,
        }));
        Assert.That(options.Burn.DnsblZones, Is.EqualTo(new[] { "bl.example.org", "zen.example.org" }));
    }

    [Test]
    public void Empty_lists_turn_patterns_and_zones_off()
    {
        var options = BindClean("""{ "Burn": { "Patterns": [], "DnsblZones": [] } }""");

        Assert.That(options.Burn.Patterns, Is.Empty);
        Assert.That(options.Burn.DnsblZones, Is.Empty);
    }

    [Test]
    public void Smarthost_and_Auto_load_with_a_primary_and_need_one()
    {
        var options = Load($$"""{ "Relay": { "Mode": "Smarthost", "ModeByUser": { "alice": "Auto" }, {{TwoRelays}} }, "Burn": { "HostAddress": "203.0.113.5" } }""");

        Assert.That(options.Relay.Mode, Is.EqualTo(RelayMode.Smarthost));
        Assert.That(options.Relay.ModeByUser["alice"], Is.EqualTo(RelayMode.Auto));
        Assert.That(Errors("""{ "Relay": { "Mode": "Smarthost" } }"""), Has.One.StartsWith("Relay.Smarthosts: Smarthost or Auto mode needs at least one relay with Role Primary"));
    }

    [Test]
    public void The_pool_keys_are_configuration_keys_with_their_defaults()
    {
        var options = Load($$"""{ "Relay": { "CredentialsFile": "/etc/creds", "ModeByUser": { "alice": "Auto" }, {{TwoRelays}} }, "Burn": { "Threshold": 3, "DnsblZones": [] } }""");

        Assert.That(options.Relay.Smarthosts.Select(s => s.Name), Is.EqualTo(new[] { "relay1", "relay2" }));
        Assert.That(options.Burn.Threshold, Is.EqualTo(3));
        var keys = OptionKeys.All.ToDictionary(k => k.Dotted);
        Assert.That(keys["Relay.Smarthosts"].Default, Is.EqualTo("[]"));
        Assert.That(keys["Relay.Smarthosts"].ItemFields, Is.EqualTo(new[] { "Name", "Host", "Port", "Role", "Tls", "TlsName", "CaFile", "EgressAddress", "HeloName" }));
        Assert.That(keys["Burn.Patterns"].Default, Does.StartWith("[{ \"Label\": \"microsoft-network-block\", \"Pattern\": "));
        Assert.That(keys["Burn.ReturnAfterDays"].Default, Is.EqualTo("21"));
        Assert.That(keys, Does.ContainKey("Relay.ModeByUser.<name>"));
    }

    [Test]
    public void A_misspelt_field_of_a_relay_or_pattern_is_an_unknown_key()
    {
        const string unknown = ": unknown key (see the README for the configuration keys)";
        Assert.That(Errors("""{ "Relay": { "Smarthosts": [ { "Name": "r", "Host": "r.example", "EgressAddress": "198.51.100.1", "Pasword": "x" } ] }, "Burn": { "Patterns": [ { "Label": "l", "Patern": "p" } ] } }"""),
            Is.SupersetOf(new[] { "Relay.Smarthosts[0].Pasword" + unknown, "Burn.Patterns[0].Patern" + unknown }));
    }

    [Test]
    public void Unknown_fields_inside_the_new_sections_are_not_bound()
    {
        var (options, _) = Bind("""{ "Relay": { "Smarthosts": [ { "Name": "r", "Password": "x" } ] }, "Burn": { "Treshold": 3 } }""");

        Assert.That(options.Relay.Smarthosts, Is.EqualTo(new[] { new SmarthostOptions { Name = "r" } }));
        Assert.That(options.Burn.Threshold, Is.EqualTo(new BurnOptions().Threshold), "a misspelt key binds nothing");
    }

    [Test]
    public void Bad_values_name_the_key()
    {
        var (_, errors) = Bind("""{ "Relay": { "ModeByUser": { "alice": "Sideways" }, "Smarthosts": [ { "Name": "r", "Host": "r.example", "Port": "smtp", "Role": "Backup", "EgressAddress": "198.51.100.1" } ] }, "Burn": { "WindowMinutes": "an hour" } }""");

        Assert.That(errors, Is.EquivalentTo(new[]
        {
            "Relay.ModeByUser.alice: \"Sideways\" is not one of OriginalDestination, Smarthost, Auto",
            "Relay.Smarthosts[0].Port: \"smtp\" is not a number",
            "Relay.Smarthosts[0].Role: \"Backup\" is not one of Primary, Standby",
            "Burn.WindowMinutes: \"an hour\" is not a number",
        }));
    }

    [Test]
    public void Each_smarthost_field_is_checked_by_its_key()
    {
        var relay = new SmarthostOptions { Name = "bad name!", Host = "-nohost", Port = 0, TlsName = "x y", CaFile = "relative.pem", EgressAddress = "127.0.0.1", HeloName = "a..b" };
        var errors = Validate(new InterceptorOptions { Relay = new RelayOptions { Smarthosts = [relay, relay with { Name = "dup" }, relay with { Name = "DUP" }] } });

        foreach (var key in new[] { "Name", "Host", "Port", "TlsName", "CaFile", "EgressAddress", "HeloName" })
        {
            Assert.That(errors, Has.Some.StartsWith($"Relay.Smarthosts[0].{key}: "), key);
        }

        Assert.That(errors, Has.One.EqualTo("Relay.Smarthosts: the name \"dup\" is used twice"));
    }

    [Test]
    public void Plain_text_relays_must_be_private_and_never_carry_credentials()
    {
        var relay = new SmarthostOptions { Name = "lan", Host = "10.0.0.5", Tls = SmarthostTls.None, EgressAddress = "198.51.100.1" };

        Assert.That(Validate(new InterceptorOptions { Relay = new RelayOptions { Smarthosts = [relay] } }), Is.Empty);
        Assert.That(Validate(new InterceptorOptions { Relay = new RelayOptions { Smarthosts = [relay with { Host = "relay.example.net" }] } }),
            Has.One.StartsWith("Relay.Smarthosts[0].Tls: None sends mail in clear text"));
        Assert.That(Validate(new InterceptorOptions { Relay = new RelayOptions { Smarthosts = [relay], CredentialsFile = "/etc/creds" } }),
            Has.One.StartsWith("Relay.Smarthosts[0].Tls: None would send the Relay.CredentialsFile logins in clear text"));
    }

    [Test]
    public void Pool_modes_need_a_primary_and_Auto_needs_the_hosts_address_for_its_DNSBL_check()
    {
        var standbyOnly = new SmarthostOptions { Name = "s", Host = "s.example", Role = SmarthostRole.Standby, EgressAddress = "198.51.100.1" };

        Assert.That(Validate(new InterceptorOptions { Relay = new RelayOptions { Mode = RelayMode.Smarthost, Smarthosts = [standbyOnly] } }),
            Has.One.StartsWith("Relay.Smarthosts: Smarthost or Auto mode needs at least one relay with Role Primary"));
        var auto = new InterceptorOptions { Relay = new RelayOptions { Mode = RelayMode.Auto, Smarthosts = [standbyOnly with { Role = SmarthostRole.Primary }] } };
        Assert.That(Validate(auto), Has.One.StartsWith("Burn.HostAddress: Auto mode looks the host's own address up"));
        Assert.That(Validate(auto with { Burn = new BurnOptions { HostAddress = "203.0.113.5" } }), Is.Empty);
    }

    [Test]
    public void Burn_values_are_checked_by_their_keys()
    {
        var errors = Validate(new InterceptorOptions
        {
            Burn = new BurnOptions
            {
                Patterns = [new BurnPatternOptions { Label = "", Pattern = "(unclosed" }], Threshold = 0, Window = TimeSpan.Zero, DnsblZones = ["localhost"],
                DnsServer = "not-an-address", CheckInterval = TimeSpan.Zero, HostAddress = "0.0.0.0", ReturnAfter = TimeSpan.FromDays(-1), ReturnCleanChecks = -1,
                HostMinUsers = 0, HostMinNetworks = 1001, RelayMinUsers = 0,
            },
        });

        Assert.That(errors, Has.One.StartsWith("Burn.Patterns[0].Pattern: not a valid regular expression"));
        foreach (var key in new[] { "Patterns[0].Label", "Threshold", "WindowMinutes", "DnsblZones[0]", "DnsServer", "CheckIntervalMinutes", "HostAddress", "ReturnAfterDays", "ReturnCleanChecks", "HostMinUsers", "HostMinNetworks", "RelayMinUsers" })
        {
            Assert.That(errors, Has.One.StartsWith($"Burn.{key}: "), key);
        }
    }
}
