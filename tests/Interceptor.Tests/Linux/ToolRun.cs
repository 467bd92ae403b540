using System.Diagnostics;

namespace Interceptor.Tests.Linux;

/// <summary>Runs a system tool a test sets its files up with (chown), asserting that it succeeded.</summary>
internal static class ToolRun
{
    public static void Run(string file, params string[] arguments)
    {
        using var process = Process.Start(file, arguments);
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, $"{file} {string.Join(' ', arguments)}");
    }
}
