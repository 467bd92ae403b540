using System.Diagnostics;
using Interceptor.Linux;

namespace Interceptor.Daemon.Commands;

/// <summary>The demo's helper programs, run through <see cref="ProcessRunner"/>; never a shell.</summary>
internal static class ExternalProcess
{
    /// <summary>Runs <paramref name="program"/> to its end; a <see cref="TimeoutException"/> when it overruns.</summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(string program, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var result = await ProcessRunner.RunAsync(new ProcessRequest(program, [.. arguments]) { Timeout = timeout }, CancellationToken.None);
        return (result.ExitCode, result.StandardOutput, result.StandardError);
    }

    public static Process Start(string program, IEnumerable<string> arguments) =>
        ProcessRunner.Start(new ProcessRequest(program, [.. arguments]));

    /// <summary>The command line that starts this very program again (apphost, or dotnet + dll).</summary>
    public static IReadOnlyList<string> Self()
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find our own executable");
        var entry = System.Reflection.Assembly.GetEntryAssembly()!.Location;
        return Path.GetFileNameWithoutExtension(host) == "dotnet" ? [host, entry] : [host];
    }

    public static bool IsInstalled(string program) =>
        program.StartsWith('/')
            ? File.Exists(program)
            : (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':').Any(d => File.Exists(Path.Combine(d, program)));
}
