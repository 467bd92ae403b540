using System.Diagnostics;
using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// check-config and rules for the user the daemon runs as (--daemon-user), run by root through the real binary: a token
/// file of root's, which root reads, is refused for a daemon of nobody as its start would refuse it; a table rendered by
/// hand exempts the daemon's uid and lets only it answer from the metrics port. Every call names the user, so that a host
/// with the package's account (the default) runs the same test.
/// </summary>
[TestFixture]
[CancelAfter(120_000)]
public sealed class DaemonUserVerbTests
{
    private static uint Nobody => TestUsers.Nobody.Uid;
    private static uint NoGroup => TestUsers.Nobody.Gid;
    private static uint MailGid => Linux.UnixGroups.GidOf("mail") ?? throw new AssertionException("no group mail (Debian has it)");

    private static Task<ProcessResult> CliAsync(Scenario s, string configPath, params string[] arguments) =>
        s.Ns.RunAsync(DaemonProcess.DotnetHost, [DaemonProcess.AssemblyPath, .. arguments, "--config", configPath], TimeSpan.FromSeconds(60));

    private static string ConfigWithToken(Scenario s, out string token)
    {
        token = s.Dir.Write("metrics.token", "0123456789abcdef0123456789abcdef\n");
        File.SetUnixFileMode(token, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return DaemonProcess.WriteConfig(s.Dir, new DaemonConfig
        {
            Settings = new Dictionary<string, System.Text.Json.Nodes.JsonNode?> { ["Metrics.Listen"] = "127.0.0.1:9326", ["Metrics.BearerTokenFile"] = token },
        });
    }

    // Moves the token into a new directory NAME of OWNER and MODE, nobody's and 0600 there, and the configuration with it.
    private static async Task<(string Directory, string Token)> TokenInDirectoryAsync(Scenario s, string config, string token, string name, string owner, int mode)
    {
        var directory = Directory.CreateDirectory(Path.Combine(s.Dir.Path, name)).FullName;
        var moved = Path.Combine(directory, "metrics.token");
        File.Move(token, moved);
        File.WriteAllText(config, File.ReadAllText(config).Replace(token, moved, StringComparison.Ordinal));
        await ProcessRunner.RunCheckedAsync("chown", "nobody", moved);
        await ProcessRunner.RunCheckedAsync("chown", owner, directory);
        File.SetUnixFileMode(directory, (UnixFileMode)mode);
        return (directory, moved);
    }

    [Test]
    public async Task Check_config_refuses_a_token_the_daemons_user_could_not_read_and_passes_it_once_chowned()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var config = ConfigWithToken(s, out var token);

        var asRoot = await CliAsync(s, config, "check-config", "--daemon-user", "root");
        var forNobody = await CliAsync(s, config, "check-config", "--daemon-user", "nobody");
        await ProcessRunner.RunCheckedAsync("chown", "nobody", token);

        var chowned = await CliAsync(s, config, "check-config", "--daemon-user", "nobody");

        Assert.That(asRoot.ExitCode, Is.Zero, asRoot.ToString());
        Assert.That(asRoot.Stdout, Does.Contain("secret files' owner and mode, and the reach of every file it reads at start, checked for the daemon's user, uid 0 (root)"), asRoot.ToString());
        Assert.That(forNobody.ExitCode, Is.EqualTo(1), forNobody.ToString());
        Assert.That(forNobody.Stderr, Does.Contain(
            $"Metrics.BearerTokenFile: {token}: is owned by uid 0 (root), which keeps the daemon's user (uid {Nobody} (nobody)) from reading it; run chown nobody {token}"), forNobody.ToString());
        Assert.That(chowned.ExitCode, Is.Zero, chowned.ToString());
        Assert.That(chowned.Stdout, Does.Contain($"checked for the daemon's user, uid {Nobody} (nobody)"), chowned.ToString());
    }

    [Test]
    public async Task Check_config_names_a_directory_the_daemons_user_may_not_search_unless_a_group_the_unit_adds_lets_it()
    {
        // The token nobody's, 0600, in a directory of group mail, 0710: nobody may search it only in that group, as a
        // unit's SupplementaryGroups= would put it.
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var config = ConfigWithToken(s, out var token);
        var (directory, moved) = await TokenInDirectoryAsync(s, config, token, "tokens", "root:mail", 0x1C8);

        var alone = await CliAsync(s, config, "check-config", "--daemon-user", "nobody");
        var inTheGroup = await CliAsync(s, config, "check-config", "--daemon-user", "nobody", "--daemon-groups", "adm mail");
        var unknown = await CliAsync(s, config, "check-config", "--daemon-user", "nobody", "--daemon-groups", "no-such-group-4711");

        Assert.That(alone.ExitCode, Is.EqualTo(1), alone.ToString());
        Assert.That(alone.Stderr, Does.Contain(
            $"Metrics.BearerTokenFile: {moved}: the daemon's user (uid {Nobody} (nobody)) may not search {directory} (owner uid 0 (root), gid {MailGid}, mode 0710); it must be able to search every directory on the path (let it search that one, or move the file)"), alone.ToString());
        Assert.That(inTheGroup.ExitCode, Is.Zero, inTheGroup.ToString());
        Assert.That(unknown.ExitCode, Is.EqualTo(1), "a problem of the unit's, named with the others" + unknown);
        Assert.That(unknown.Stderr, Does.Contain("--daemon-groups: no such group \"no-such-group-4711\" in the group database (a unit naming it in Group= or SupplementaryGroups= does not start)"), unknown.ToString());
        Assert.That(unknown.Stderr, Does.Contain($"Metrics.BearerTokenFile: {moved}: the daemon's user"), "the rest still checked" + unknown);
    }

    [Test]
    public async Task Check_config_escapes_a_directory_name_a_link_brings_before_it_reaches_the_terminal()
    {
        // The token's path passes a link (a customer's, say, in a directory she owns) to a directory whose name holds an
        // escape sequence; the problem line names that directory, so the sequence must reach apt's output escaped.
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var config = ConfigWithToken(s, out var token);
        var (hostile, moved) = await TokenInDirectoryAsync(s, config, token, "evil\u001b[2J\u001b[31m", "root:root", 0x1C0);
        File.CreateSymbolicLink(Path.Combine(s.Dir.Path, "link"), hostile);
        var viaLink = Path.Combine(s.Dir.Path, "link", "metrics.token");
        File.WriteAllText(config, File.ReadAllText(config).Replace(moved, viaLink, StringComparison.Ordinal));

        var check = await CliAsync(s, config, "check-config", "--daemon-user", "nobody");

        Assert.That(check.ExitCode, Is.EqualTo(1), check.ToString());
        Assert.That(check.Stderr, Does.Contain($"may not search {s.Dir.Path}/evil\\x1b[2J\\x1b[31m (owner uid 0 (root)"), check.ToString());
        Assert.That(check.Stderr, Does.Not.Contain("\u001b"), "no raw escape byte reaches the terminal");
    }

    [Test]
    public async Task Check_config_judges_a_units_group_in_place_of_the_users_own()
    {
        // The token nobody's, 0600, in a directory of nobody's own group (nogroup), 0710: open to nobody, until a unit's
        // Group= puts the daemon in another group instead, as systemd does.
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var config = ConfigWithToken(s, out var token);
        var (directory, moved) = await TokenInDirectoryAsync(s, config, token, "tokens", $"root:{NoGroup}", 0x1C8);

        var own = await CliAsync(s, config, "check-config", "--daemon-user", "nobody", "--daemon-group", "", "--daemon-groups", "");
        var other = await CliAsync(s, config, "check-config", "--daemon-user", "nobody", "--daemon-group", "mail", "--daemon-groups", "");
        var twice = await CliAsync(s, config, "check-config", "--daemon-user", "nobody", "--daemon-group", "mail", "--daemon-groups", NoGroup.ToString(CultureInfo.InvariantCulture));

        Assert.That(own.ExitCode, Is.Zero, "a unit without Group= (the postinst passes it empty)" + own);
        Assert.That(other.ExitCode, Is.EqualTo(1), other.ToString());
        Assert.That(other.Stderr, Does.Contain(
            $"Metrics.BearerTokenFile: {moved}: the daemon's user (uid {Nobody} (nobody)) may not search {directory} (owner uid 0 (root), gid {NoGroup}, mode 0710)"), other.ToString());
        Assert.That(twice.ExitCode, Is.Zero, "SupplementaryGroups= gives the group back" + twice);
    }

    [Test]
    public async Task Rules_for_the_daemons_user_exempt_it_and_let_only_it_answer_from_the_metrics_port()
    {
        await using var s = await Scenario.StartAsync(startMx: false, startDaemon: false);
        var config = ConfigWithToken(s, out _);

        var mine = await CliAsync(s, config, "rules", "--daemon-user", "root");
        var nobodys = await CliAsync(s, config, "rules", "--daemon-user", "nobody");

        Assert.That(mine.ExitCode, Is.Zero, mine.ToString());
        Assert.That(nobodys.ExitCode, Is.Zero, nobodys.ToString());
        Assert.That(nobodys.Stdout, Does.Contain($"meta skuid {Nobody} counter accept comment \"smtp-interceptor's own answers"), nobodys.Stdout);
        Assert.That(mine.Stdout, Does.Contain("meta skuid 0 counter accept comment \"smtp-interceptor's own answers"), mine.Stdout);
        Assert.That(ExemptElements(nobodys.Stdout), Does.Contain(Nobody.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(ExemptElements(mine.Stdout), Does.Not.Contain(Nobody.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    // The elements of the exempt_uids set, as `rules` prints them.
    private static string ExemptElements(string rules)
    {
        var set = rules.IndexOf("set exempt_uids", StringComparison.Ordinal);
        Assert.That(set, Is.Not.Negative, rules);
        var elements = rules.IndexOf("elements = {", set, StringComparison.Ordinal);
        return rules[elements..rules.IndexOf('}', elements)];
    }
}
