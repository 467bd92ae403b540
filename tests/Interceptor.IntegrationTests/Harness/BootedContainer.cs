using System.Globalization;

namespace Interceptor.IntegrationTests;

/// <summary>
/// A Debian 12 root booted with systemd as PID 1 under systemd-nspawn, with a private network (only its own
/// loopback: nothing it does can leave it). The root is built once by Fixtures/booted_root.sh and cached; each
/// container runs on an overlay of it (writes go to a per-run directory), so the cache stays pristine and a
/// reboot (<see cref="PowerOffAsync"/> then <see cref="BootAsync"/>) keeps what the run wrote. Commands run inside
/// with nsenter into all of the container's namespaces. Disposal powers it off, unmounts and deletes the copy.
/// </summary>
public sealed class BootedContainer : IAsyncDisposable
{
    private const string InsidePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    private readonly string _runDirectory;
    private readonly string _merged;
    private BackgroundProcess? _nspawn;
    private int _boots;

    private BootedContainer(string runDirectory)
    {
        _runDirectory = runDirectory;
        _merged = Path.Combine(runDirectory, "root");
        Machine = "smtpi-" + Path.GetFileName(runDirectory).Replace("smtpi-boot-", "", StringComparison.Ordinal).ToLowerInvariant();
    }

    /// <summary>The nspawn machine name, unique per run.</summary>
    public string Machine { get; }

    /// <summary>The container's root as the host sees it (the overlay's merged directory).</summary>
    public string RootOnHost => _merged;

    /// <summary>PID (in the host's namespace) of the container's systemd, while booted.</summary>
    public int InitPid { get; private set; }

    /// <summary>The cached root's path, built on first use (minutes, from Debian's mirror).</summary>
    public static async Task<string> CachedRootAsync()
    {
        var script = Path.Combine(TestDirectory.FixturesDirectory, "booted_root.sh");
        var build = await ProcessRunner.RunAsync("/bin/bash", [script], TimeSpan.FromMinutes(30));
        if (!build.Succeeded)
        {
            // Typically no route to Debian's mirror on a developer box: skip there, fail under CI.
            var reason = "building the Debian 12 root (Fixtures/booted_root.sh) failed:\n" + build.Describe();
            if (!Requirements.UnderCi)
            {
                Assert.Ignore(reason);
            }

            Assert.Fail(reason);
        }

        return build.Stdout.Trim().Split('\n')[^1];
    }

    /// <summary>An overlay of <paramref name="cachedRoot"/> in a fresh directory under /var/tmp (a disk, not a tmpfs).</summary>
    public static async Task<BootedContainer> CreateAsync(string cachedRoot)
    {
        // /var/tmp rather than $TMPDIR: the copy (package, journal, state) belongs on a disk, not in a tmpfs.
        var moved = Path.Combine("/var/tmp", "smtpi-boot-" + Path.GetRandomFileName().Replace(".", "", StringComparison.Ordinal));
        Directory.CreateDirectory(moved);
        var container = new BootedContainer(moved);
        foreach (var sub in new[] { "upper", "work", "root" })
        {
            Directory.CreateDirectory(Path.Combine(moved, sub));
        }

        await ProcessRunner.RunCheckedAsync(
            "mount", "-t", "overlay", "overlay", "-o",
            $"lowerdir={cachedRoot},upperdir={Path.Combine(moved, "upper")},workdir={Path.Combine(moved, "work")}",
            container._merged);
        return container;
    }

    /// <summary>Boots the root and waits until systemd says running (or degraded: the failed units are returned).</summary>
    public async Task<string> BootAsync(TimeSpan timeout)
    {
        _boots++;
        _nspawn = BackgroundProcess.Start(
            $"nspawn {Machine} boot {_boots}",
            "systemd-nspawn",
            ["--keep-unit", "--register=no", "--boot", "--private-network", "--console=pipe", "--quiet",
             "--machine", Machine, "--directory", _merged],
            new Dictionary<string, string?> { ["SYSTEMD_NSPAWN_TMPFS_TMP"] = "1" });
        InitPid = await FindInitAsync(_nspawn, TimeSpan.FromSeconds(60));
        // systemctl needs systemd's private socket, which appears a moment after PID 1 starts.
        var state = await ExecAsync("for i in $(seq 600); do [ -S /run/systemd/private ] && break; sleep 0.1; done; systemctl is-system-running --wait", timeout);
        var word = state.Stdout.Trim();
        if (word == "running")
        {
            return word;
        }

        Assert.That(word, Is.EqualTo("degraded"), "the container did not boot:\n" + state.Describe() + "\n" + _nspawn.Transcript());
        var failed = await ExecAsync("systemctl --failed --no-legend --plain");
        return $"degraded (failed units: {failed.Stdout.Trim().Replace('\n', ';')})";
    }

    /// <summary>The container's init: nspawn's child process whose command is systemd.</summary>
    private static async Task<int> FindInitAsync(BackgroundProcess nspawn, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < until && !nspawn.HasExited)
        {
            var children = Path.Combine("/proc", nspawn.ProcessId.ToString(CultureInfo.InvariantCulture), "task",
                nspawn.ProcessId.ToString(CultureInfo.InvariantCulture), "children");
            var pids = File.Exists(children) ? (await File.ReadAllTextAsync(children)).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];
            foreach (var pid in pids)
            {
                var comm = Path.Combine("/proc", pid, "comm");
                if (File.Exists(comm) && (await File.ReadAllTextAsync(comm)).Trim() == "systemd")
                {
                    return int.Parse(pid, CultureInfo.InvariantCulture);
                }
            }

            await Task.Delay(200);
        }

        Assert.Fail("no systemd under systemd-nspawn:\n" + nspawn.Transcript());
        return 0;
    }

    /// <summary>Runs a bash script inside the container (all its namespaces, a clean environment) as root.</summary>
    public Task<ProcessResult> ExecAsync(string script, TimeSpan? timeout = null) =>
        ProcessRunner.RunAsync(
            "nsenter",
            ["--target", InitPid.ToString(CultureInfo.InvariantCulture), "--all",
             "/usr/bin/env", "-i", "PATH=" + InsidePath, "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0",
             "/bin/bash", "-c", script],
            timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>Like <see cref="ExecAsync"/>, failing the test when the script fails.</summary>
    public async Task<string> CheckedAsync(string script, TimeSpan? timeout = null)
    {
        var result = await ExecAsync(script, timeout);
        Assert.That(result.Succeeded, Is.True, "inside the container:\n" + result.Describe());
        return result.Stdout;
    }

    /// <summary>Clean shutdown (systemctl poweroff), waiting for nspawn to exit; SIGKILL after the timeout.</summary>
    public async Task PowerOffAsync(TimeSpan timeout)
    {
        if (_nspawn is null)
        {
            return;
        }

        if (!_nspawn.HasExited)
        {
            await ExecAsync("systemctl poweroff --no-block", TimeSpan.FromSeconds(20));
            if (!await _nspawn.WaitForExitAsync(timeout))
            {
                await _nspawn.SignalAsync("KILL");
                await _nspawn.WaitForExitAsync(TimeSpan.FromSeconds(20));
            }
        }

        await _nspawn.DisposeAsync();
        _nspawn = null;
        InitPid = 0;
    }

    /// <summary>The console output of the current boot (for failure messages).</summary>
    public string Console() => _nspawn?.Transcript() ?? "(not booted)";

    public async ValueTask DisposeAsync()
    {
        try
        {
            await PowerOffAsync(TimeSpan.FromSeconds(60));
        }
        finally
        {
            // Lazy: a process nspawn left behind must not keep the run's copy (gigabytes over many runs) alive.
            await ProcessRunner.RunAsync("umount", ["--lazy", _merged], TimeSpan.FromSeconds(30));
            await ProcessRunner.RunAsync("rm", ["-rf", "--one-file-system", _runDirectory], TimeSpan.FromMinutes(2));
        }
    }
}
