using System.Text.RegularExpressions;
using Interceptor.Daemon.Commands;
using Interceptor.Daemon.Configuration;
using Interceptor.Daemon.Control;
using Microsoft.Extensions.Logging.Abstractions;

namespace Interceptor.Tests.Daemon.Commands;

/// <summary>Every verb parses, and each kind of usage mistake is exit 2 with a message naming it (nothing is run).</summary>
[TestFixture]
public sealed class CommandLineDefinitionTests
{
    private StringWriter _output = null!;
    private CommandLineDefinition _definition = null!;

    [SetUp]
    public void SetUp()
    {
        _output = new StringWriter();
        _definition = CommandLineDefinition.Create(NullLoggerFactory.Instance, _output);
    }

    [TearDown]
    public void TearDown() => _output.Dispose();

    private (string Verb, Arguments Arguments, ControlRequest? Request) Parsed(params string[] args)
    {
        var (result, errors) = _definition.Parse(args);
        Assert.That(errors, Is.Empty, string.Join(" ", args));
        return (result.CommandResult.Command.Name, _definition.ArgumentsOf(result), _definition.AdminRequestOf(result));
    }

    private async Task<(int Code, string Error)> UsageAsync(params string[] args)
    {
        using var error = new StringWriter();
        var code = await _definition.InvokeAsync(args, error);
        return (code, error.ToString());
    }

    [TestCase("run", "--config", "/etc/x.json")]
    [TestCase("check-config", "-c", "/etc/x.json")]
    [TestCase("rules", "--config", "/etc/x.json")]
    [TestCase("remove-rules", "--config", "/etc/x.json")]
    [TestCase("demo", "--config", "/etc/x.json")]
    [TestCase("--config", "/etc/x.json", "rules")]
    public void Daemon_verbs_take_the_configuration_before_or_after_the_verb(params string[] args)
    {
        var (verb, arguments, request) = Parsed(args);

        Assert.That(verb, Is.EqualTo(args.First(a => !a.StartsWith('-') && !a.StartsWith('/'))));
        Assert.That(arguments, Is.EqualTo(new Arguments(verb, "/etc/x.json", false)));
        Assert.That(request, Is.Null);
    }

    [Test]
    public void Check_config_and_rules_take_the_daemons_user_and_refuse_an_unknown_or_empty_one()
    {
        Assert.That(Parsed("check-config", "--daemon-user", "nobody").Arguments.DaemonUser, Is.EqualTo("nobody"));
        Assert.That(Parsed("rules", "--daemon-user", "65534").Arguments.DaemonUser, Is.EqualTo("65534"));
        Assert.That(Parsed("check-config").Arguments.DaemonUser, Is.Null);
        Assert.That(_definition.Parse(["rules", "--daemon-user", "no-such-user-here"]).Errors, Is.EqualTo(new[] { "--daemon-user: no such user \"no-such-user-here\" in the user database" }));
        Assert.That(_definition.Parse(["check-config", "--daemon-user", ""]).Errors, Is.EqualTo(new[] { "--daemon-user: an empty name" }));
        Assert.That(_definition.Parse(["run", "--daemon-user", "nobody"]).Errors, Is.Not.Empty, "run is the daemon: it is whoever runs it");
        Assert.That(_definition.Parse(["rules", "--user", "nobody"]).Errors, Is.Not.Empty, "--user names a customer on the admin verbs, never the daemon");
    }

    [Test]
    public void Check_config_takes_the_units_groups_by_name_or_gid_and_names_an_unknown_one_as_a_problem()
    {
        var parsed = Parsed("check-config", "--daemon-user", "nobody", "--daemon-groups", "nogroup 4242,adm");

        Assert.That(parsed.Arguments.DaemonGroups, Is.EqualTo("nogroup 4242,adm"));
        var (all, unknown) = DaemonAccount.GroupsNamed(parsed.Arguments.DaemonGroups);
        Assert.That(all, Is.EqualTo(new uint[] { 65534, 4 }));
        Assert.That(unknown, Is.EqualTo(new[]
        {
            "--daemon-groups: no such group \"4242\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)",
        }), "a gid the database does not have: systemd refuses it as it refuses a name");
        Assert.That(DaemonAccount.GroupsNamed("0 65534").Gids, Is.EqualTo(new uint[] { 0, 65534 }), "root's and nobody's, which systemd knows without the database");
        Assert.That(Parsed("check-config", "--daemon-groups", " ").Arguments.DaemonGroups, Is.EqualTo(" "), "a unit without SupplementaryGroups=, as the postinst passes it");
        Assert.That(DaemonAccount.GroupsNamed(" ").Gids, Is.Empty);
        var (gids, problems) = DaemonAccount.GroupsNamed("adm no-such-group-here 4294967295");
        Assert.That(gids, Is.EqualTo(new uint[] { 4 }));
        Assert.That(problems, Is.EqualTo(new[]
        {
            "--daemon-groups: no such group \"no-such-group-here\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)",
            "--daemon-groups: no such group \"4294967295\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)",
        }), "(gid_t)-1 is not a group");
        Assert.That(_definition.Parse(["rules", "--daemon-groups", "adm"]).Errors, Is.Not.Empty, "rules renders for a uid: groups mean nothing there");
        Assert.That(Parsed("check-config", "--daemon-group", "adm").Arguments.DaemonGroup, Is.EqualTo("adm"));
        Assert.That(DaemonAccount.PrimaryGroupNamed("adm"), Is.EqualTo(((uint?)4, Array.Empty<string>())).Using<(uint?, IReadOnlyList<string>)>((a, b) => a.Item1 == b.Item1 && a.Item2.SequenceEqual(b.Item2)));
        Assert.That(DaemonAccount.PrimaryGroupNamed("").Gid, Is.Null, "a unit without Group=, as the postinst passes it");
        Assert.That(DaemonAccount.PrimaryGroupNamed("adm 4242").Problems, Is.EqualTo(new[]
        {
            "--daemon-group: no such group \"adm 4242\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)",
        }), "one name, taken whole (a relaxed group name may hold a space)");
        Assert.That(DaemonAccount.PrimaryGroupNamed(" 0 ").Gid, Is.Zero);
        Assert.That(DaemonAccount.PrimaryGroupNamed("no-such-group-here").Problems, Is.EqualTo(new[]
        {
            "--daemon-group: no such group \"no-such-group-here\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)",
        }));
        Assert.That(Parsed("check-config", "--daemon-sandbox", "ProtectHome=yes PrivateTmp=yes").Arguments.DaemonSandbox, Is.EqualTo("ProtectHome=yes PrivateTmp=yes"));
        Assert.That(ReferencedFiles.HiddenBy("ProtectHome=yes PrivateTmp=yes"), Is.EqualTo(new[] { "/home", "/root", "/run/user", "/tmp", "/var/tmp" }));
        Assert.That(ReferencedFiles.HiddenBy("ProtectHome=tmpfs PrivateTmp=no"), Is.EqualTo(new[] { "/home", "/root", "/run/user" }));
        Assert.That(ReferencedFiles.HiddenBy("ProtectHome=no PrivateTmp=disconnected"), Is.EqualTo(new[] { "/tmp", "/var/tmp" }), "newer systemd's private /tmp");
        Assert.That(ReferencedFiles.HiddenBy("ProtectHome=read-only PrivateTmp="), Is.Empty, "read-only hides nothing; an empty value is systemctl's for a unit it cannot show");
    }

    [Test]
    public void Without_config_the_packaged_file_is_used_only_when_it_exists()
    {
        var expected = File.Exists(Arguments.DefaultConfigPath) ? Arguments.DefaultConfigPath : null;

        Assert.That(Parsed("check-config").Arguments.ConfigPath, Is.EqualTo(expected));
    }

    [Test]
    public void Every_admin_verb_becomes_its_control_request()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Parsed("status", "--json").Request, Is.EqualTo(new ControlRequest { Verb = "status" }));
            Assert.That(Parsed("status", "--json").Arguments.Json, Is.True);
            Assert.That(Parsed("status").Arguments.Json, Is.False);
            Assert.That(Parsed("users", "--since", "2d").Request, Is.EqualTo(new ControlRequest { Verb = "users", Since = "2d" }));
            Assert.That(Parsed("users", "--limit", "3", "--since", "1h").Request, Is.EqualTo(new ControlRequest { Verb = "users", Since = "1h", Limit = 3 }));
            Assert.That(Parsed("log", "--user", "1001", "--since", "30m", "--limit", "5").Request, Is.EqualTo(new ControlRequest { Verb = "log", User = "1001", Since = "30m", Limit = 5 }));
            Assert.That(Parsed("block", "alice", "--reason", "spam").Request, Is.EqualTo(new ControlRequest { Verb = "block", User = "alice", Reason = "spam" }));
            Assert.That(Parsed("block", "--reason", "@home -x", "alice").Request!.Reason, Is.EqualTo("@home -x"), "no response files, no option look-alikes");
            Assert.That(Parsed("unblock", "alice", "--config", "/c.json").Request, Is.EqualTo(new ControlRequest { Verb = "unblock", User = "alice" }));
            Assert.That(Parsed("domains").Request, Is.EqualTo(new ControlRequest { Verb = "domains" }));
            Assert.That(Parsed("domains", "--check", "--user", "alice", "--json").Request, Is.EqualTo(new ControlRequest { Verb = "domains", User = "alice", Check = true }));
            Assert.That(Parsed("limits").Request, Is.EqualTo(new ControlRequest { Verb = "limits" }));
            Assert.That(Parsed("limits", "alice", "--json").Request, Is.EqualTo(new ControlRequest { Verb = "limits", User = "alice" }));
        });
    }

    [Test]
    public void The_admin_verbs_are_exactly_the_control_verbs()
    {
        Assert.That(_definition.AdminVerbs.Select(v => v.Name), Is.EqualTo(ControlVerbs.All));
    }

    [TestCase(new string[0], "Required command was not provided")]
    [TestCase(new[] { "frobnicate" }, "'frobnicate'")]
    [TestCase(new[] { "block", "alice" }, "'--reason' is required")]
    [TestCase(new[] { "block", "--reason", "x" }, "'USER' missing")]
    [TestCase(new[] { "unblock" }, "'USER' missing")]
    [TestCase(new[] { "unblock", "alice", "bob" }, "'bob'")]
    [TestCase(new[] { "status", "alice" }, "'alice'")]
    [TestCase(new[] { "users", "--reason", "x" }, "'--reason'")]
    [TestCase(new[] { "unblock", "alice", "--reason", "x" }, "'--reason'")]
    [TestCase(new[] { "limits", "--since", "1h" }, "limits does not take --since")]
    [TestCase(new[] { "block", "--bogus", "--reason", "x" }, "block does not take --bogus")]
    [TestCase(new[] { "rules", "--json" }, "'--json'")]
    [TestCase(new[] { "run", "extra" }, "'extra'")]
    [TestCase(new[] { "status", "--config" }, "'--config'")]
    [TestCase(new[] { "log", "--user" }, "'--user'")]
    [TestCase(new[] { "log", "--limit", "ten" }, "--limit: \"ten\" is not a whole number between 1 and 10000")]
    [TestCase(new[] { "log", "--limit", "-3" }, "--limit: \"-3\" is not a whole number")]
    [TestCase(new[] { "log", "--limit", "0" }, "--limit: 0 is not between 1 and 10000")]
    [TestCase(new[] { "log", "--since", "yesterday" }, "--since: \"yesterday\" is not a duration such as 30m, 1h, 2d or 1w")]
    [TestCase(new[] { "block", "alice", "--reason", "  " }, "block needs --reason TEXT")]
    [TestCase(new[] { "block", "alice", "--reason", "caf\u00e9" }, "--reason must be printable ASCII on one line")]
    [TestCase(new[] { "status", "--version" }, "'--version'")]
    public async Task Usage_mistakes_exit_2_naming_the_problem_then_show_the_usage(string[] args, string expected)
    {
        var (code, error) = await UsageAsync(args);

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.EqualTo(2));
            Assert.That(error, Does.StartWith("smtp-interceptor: ").And.Contains(expected));
            Assert.That(error, Does.Contain("Usage: smtp-interceptor "));
            Assert.That(_output.ToString(), Is.Empty, "nothing ran, nothing on standard output");
        });
    }

    [Test]
    public async Task A_verbs_usage_error_shows_that_verbs_usage()
    {
        var (_, error) = await UsageAsync("log", "--limit", "ten");

        Assert.That(error, Does.Contain("Usage: smtp-interceptor log [--user USER] [--since DURATION] [--limit N] [--json] [--config FILE]"));
        Assert.That(error, Does.Not.Contain("remove-rules"));
    }

    [TestCase("help")]
    [TestCase("--help")]
    [TestCase("-h")]
    public async Task Help_lists_every_verb_with_its_usage_and_exits_0(string word)
    {
        var (code, error) = await UsageAsync(word);
        var help = _output.ToString();

        Assert.Multiple(() =>
        {
            Assert.That(code, Is.Zero);
            Assert.That(error, Is.Empty);
            foreach (var verb in _definition.DaemonVerbs.Concat(_definition.AdminVerbs))
            {
                Assert.That(help, Does.Match($"(?m)^  {Regex.Escape(CommandHelp.Usage(_definition, verb))}( |$)"), verb.Name);
            }

            Assert.That(help, Does.Contain("block USER --reason TEXT"));
            Assert.That(help, Does.Contain("limits [USER]"));
            Assert.That(help, Does.Contain("-c, --config FILE"));
            Assert.That(help, Does.Contain("-h, --help  ").And.Contains("--version  ").And.Contains("--json  "), "flags take no value");
            Assert.That(help, Does.Contain("Exit codes: 0 ok, 1 invalid configuration, 2 wrong usage"));
            Assert.That(help, Does.Not.Contain("--demo"), "hidden alias");
        });
    }

    [Test]
    public async Task Help_after_a_verb_shows_its_options_even_with_other_mistakes()
    {
        var (code, _) = await UsageAsync("users", "--help", "--bogus");

        Assert.That(code, Is.Zero);
        Assert.That(_output.ToString(), Does.StartWith("Usage: smtp-interceptor users [--since DURATION] [--limit N] [--json] [--config FILE]").And.Contains("how far back").And.Contains("  --json   "));
    }

    [TestCase("version")]
    [TestCase("--version")]
    public async Task Version_prints_three_numbers(string word)
    {
        var (code, _) = await UsageAsync(word);

        Assert.That(code, Is.Zero);
        Assert.That(_output.ToString(), Does.Match(@"^\d+\.\d+\.\d+\r?\n$"));
    }
}
