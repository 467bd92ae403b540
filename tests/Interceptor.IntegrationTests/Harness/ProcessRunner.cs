using System.Diagnostics;
using System.Text;

namespace Interceptor.IntegrationTests;

/// <summary>What a finished (or timed-out) child process left behind.</summary>
public sealed record ProcessResult(
    string Command,
    int ExitCode,
    string Stdout,
    string Stderr,
    bool TimedOut,
    TimeSpan Elapsed)
{
    public bool Succeeded => !TimedOut && ExitCode == 0;

    /// <summary>Everything a failure message needs to be understood without re-running.</summary>
    public string Describe() =>
        $"$ {Command}\nexit={ExitCode} timedOut={TimedOut} elapsed={Elapsed.TotalSeconds:F1}s\n--- stdout ---\n{Truncate(Stdout)}\n--- stderr ---\n{Truncate(Stderr)}";

    private static string Truncate(string text) =>
        text.Length <= 8000 ? text : text[..4000] + "\n[...]\n" + text[^4000..];
}

/// <summary>
/// Runs short-lived commands with a hard timeout. Every test process is bounded so a hung
/// daemon can fail a test but never hang the whole run.
/// </summary>
public static class ProcessRunner
{
    /// <summary>PATH for children: sbin first because nft, ip and smtp-sink live there.</summary>
    public const string SafePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    public static async Task<ProcessResult> RunAsync(
        string fileName,
        IEnumerable<string> arguments,
        TimeSpan timeout,
        bool cleanEnvironment = false)
    {
        var startInfo = CreateStartInfo(fileName, arguments, cleanEnvironment);
        var command = Describe(startInfo);
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var watch = Stopwatch.StartNew();
        using var process = new Process { StartInfo = startInfo };
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var timedOut = false;
        using (var cts = new CancellationTokenSource(timeout))
        {
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                timedOut = true;
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }

        // The parameterless wait also drains the asynchronous output readers.
        process.WaitForExit();
        watch.Stop();
        return new ProcessResult(command, process.ExitCode, Read(stdout), Read(stderr), timedOut, watch.Elapsed);
    }

    /// <summary>Runs a command that must succeed; a failure is a broken harness, so fail the test with its output.</summary>
    public static async Task<ProcessResult> RunCheckedAsync(string fileName, params string[] arguments)
    {
        var result = await RunAsync(fileName, arguments, TimeSpan.FromSeconds(30));
        if (!result.Succeeded)
        {
            Assert.Fail("harness command failed:\n" + result.Describe());
        }

        return result;
    }

    public static ProcessStartInfo CreateStartInfo(string fileName, IEnumerable<string> arguments, bool cleanEnvironment)
    {
        // Process.Start searches the parent's PATH, which may lack sbin; resolve bare names here.
        if (!fileName.Contains('/', StringComparison.Ordinal))
        {
            fileName = Requirements.Which(fileName) ?? fileName;
        }

        var startInfo = new ProcessStartInfo(fileName)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (cleanEnvironment)
        {
            // Clients run as other users: root's HOME, pyenv shims and the test host's DOTNET_*
            // variables must not leak into them (python would try to read /root, swaks ~/.swaksrc).
            startInfo.Environment.Clear();
            startInfo.Environment["PATH"] = SafePath;
            startInfo.Environment["HOME"] = "/nonexistent";
            startInfo.Environment["LANG"] = "C.UTF-8";
        }
        else
        {
            startInfo.Environment["PATH"] = SafePath + ":" + Environment.GetEnvironmentVariable("PATH");

            // The daemon's verbs (rules, check-config, remove-rules) read SMTPI_* as configuration keys: the test run's
            // own switches (SMTPI_KEEP_TEST_USERS) would be "unknown keys" there.
            foreach (var name in startInfo.Environment.Keys.Where(k => k.StartsWith("SMTPI_", StringComparison.Ordinal)).ToList())
            {
                startInfo.Environment.Remove(name);
            }
        }

        return startInfo;
    }

    public static string Describe(ProcessStartInfo startInfo) =>
        startInfo.FileName + " " + string.Join(" ", startInfo.ArgumentList.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"'{a}'" : a));

    private static void Append(StringBuilder builder, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (builder)
        {
            builder.Append(line).Append('\n');
        }
    }

    private static string Read(StringBuilder builder)
    {
        lock (builder)
        {
            return builder.ToString();
        }
    }
}
