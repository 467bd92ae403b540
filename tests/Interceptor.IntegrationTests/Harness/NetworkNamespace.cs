using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A throwaway network namespace: its own loopback, its own nftables ruleset, so the daemon's
/// table and all test traffic stay out of the host. 127.0.0.2 is already local on lo;
/// 2001:db8::25 (documentation prefix) is added so IPv6 has a non-loopback "remote" MX address.
/// Deletion kills everything still running inside and always happens, even after a failed setup.
/// </summary>
public sealed class NetworkNamespace : IAsyncDisposable
{
    public const string MxAddress4 = "127.0.0.2";
    public const string MxAddress6 = "2001:db8::25";

    private NetworkNamespace(string name) => Name = name;

    public string Name { get; }

    public static async Task<NetworkNamespace> CreateAsync()
    {
        Requirements.Ensure();
        var name = "smtpi-" + Guid.NewGuid().ToString("N")[..10];
        await ProcessRunner.RunCheckedAsync("ip", "netns", "add", name);
        var ns = new NetworkNamespace(name);
        try
        {
            await ProcessRunner.RunCheckedAsync("ip", "-n", name, "link", "set", "lo", "up");
            await ProcessRunner.RunCheckedAsync("ip", "-n", name, "addr", "add", MxAddress6 + "/128", "dev", "lo", "nodad");
            return ns;
        }
        catch
        {
            await ns.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runs a command inside the namespace as root and waits for it.</summary>
    public Task<ProcessResult> RunAsync(string program, IEnumerable<string> arguments, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync("ip", ["netns", "exec", Name, Requirements.Which(program) ?? program, .. arguments], timeout ?? TimeSpan.FromSeconds(30));

    /// <summary>
    /// Runs a command inside the namespace as <paramref name="user"/> (null = root, unchanged), with a
    /// clean environment. setpriv changes real and effective uid/gid and drops supplementary groups,
    /// so the socket the client opens is owned by that user, which is what nft's skuid and the
    /// daemon's sock_diag lookup see.
    /// </summary>
    public Task<ProcessResult> RunAsUserAsync(TestUser? user, string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        List<string> command = ["netns", "exec", Name];
        if (user is not null)
        {
            command.AddRange(
            [
                Requirements.Require("setpriv"),
                "--reuid=" + user.Uid.ToString(CultureInfo.InvariantCulture),
                "--regid=" + user.Gid.ToString(CultureInfo.InvariantCulture),
                "--clear-groups",
            ]);
        }

        command.Add(Requirements.Which(program) ?? program);
        command.AddRange(arguments);
        return ProcessRunner.RunAsync("ip", command, timeout, cleanEnvironment: true);
    }

    /// <summary>Starts a long-running process inside the namespace as root.</summary>
    public BackgroundProcess StartBackground(string name, string program, IEnumerable<string> arguments, IDictionary<string, string?>? environment = null) =>
        BackgroundProcess.Start(name, Requirements.Require("ip"), ["netns", "exec", Name, Requirements.Which(program) ?? program, .. arguments], environment);

    /// <summary>True once something listens on <paramref name="endpoint"/> (e.g. "127.0.0.2:25") inside the namespace.</summary>
    public async Task<bool> WaitForListenerAsync(string endpoint, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var result = await RunAsync("ss", ["-H", "-l", "-t", "-n"]);
            if (result.Stdout.Split('\n').Any(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(endpoint)))
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    public async ValueTask DisposeAsync()
    {
        // Kill whatever is left (a hung client, a daemon that ignored SIGTERM) so the namespace can go.
        var pids = await ProcessRunner.RunAsync("ip", ["netns", "pids", Name], TimeSpan.FromSeconds(10));
        foreach (var pid in pids.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            await ProcessRunner.RunAsync("kill", ["-9", pid], TimeSpan.FromSeconds(10));
        }

        for (var attempt = 0; attempt < 5; attempt++)
        {
            var result = await ProcessRunner.RunAsync("ip", ["netns", "del", Name], TimeSpan.FromSeconds(10));
            if (result.Succeeded)
            {
                return;
            }

            await Task.Delay(200);
        }

        await TestContext.Out.WriteLineAsync($"warning: network namespace {Name} could not be deleted");
    }
}
