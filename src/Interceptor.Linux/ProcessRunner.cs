using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Interceptor.Linux;

/// <summary>One run of an external program: arguments as a list (never interpreted by a shell), optional stdin and environment.</summary>
public sealed record ProcessRequest(string Program, IReadOnlyList<string> Arguments)
{
    /// <summary>Written to the program's stdin, which is then closed; null closes it at once.</summary>
    public string? StandardInput { get; init; }

    /// <summary>Added to (or replacing in) the daemon's own environment.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>How long it may run before it and its children are killed.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>"program arg1 arg2", for messages.</summary>
    public string CommandLine => string.Join(' ', Arguments.Prepend(Program));
}

public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>The program ran past <see cref="ProcessRequest.Timeout"/> and was killed with its children.</summary>
public sealed class ProcessTimedOutException(ProcessRequest request, string standardError)
    : TimeoutException($"{request.Program} did not finish within {request.Timeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture)} s")
{
    public ProcessRequest Request { get; } = request;

    /// <summary>What it wrote to stderr before it was killed.</summary>
    public string StandardError { get; } = standardError;
}

/// <summary>
/// The daemon's one way to run an external program (nft, the admin's alert command, the demo's helpers): bounded in
/// time, both pipes read while it runs (a full pipe would block it until the timeout), killed with its children when
/// the time is up or the caller gives up. A program that cannot be started throws <see cref="System.ComponentModel.Win32Exception"/>.
/// </summary>
public static class ProcessRunner
{
    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    public static async Task<ProcessResult> RunAsync(ProcessRequest request, CancellationToken cancellationToken)
    {
        using var process = Start(request, redirectInput: true);
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(request.Timeout);
        try
        {
            await WriteInputAsync(process, request.StandardInput, deadline.Token);
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // It exited between the deadline and the kill; nothing left to stop.
            }

            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            throw new ProcessTimedOutException(request, await stderr);
        }

        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts a program that runs on its own (the caller waits for it and disposes it); stdout and stderr are redirected.</summary>
    public static Process Start(ProcessRequest request) => Start(request, redirectInput: false);

    private static Process Start(ProcessRequest request, bool redirectInput)
    {
        var info = new ProcessStartInfo(request.Program)
        {
            UseShellExecute = false,
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Utf8NoBom,
            StandardErrorEncoding = Utf8NoBom,
        };
        if (redirectInput)
        {
            info.StandardInputEncoding = Utf8NoBom;
        }

        foreach (var argument in request.Arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (name, value) in request.Environment)
        {
            info.Environment[name] = value;
        }

        return Process.Start(info) ?? throw new InvalidOperationException($"could not start {request.Program}");
    }

    private static async Task WriteInputAsync(Process process, string? standardInput, CancellationToken cancellationToken)
    {
        try
        {
            if (standardInput is not null)
            {
                await process.StandardInput.WriteAsync(standardInput.AsMemory(), cancellationToken);
                await process.StandardInput.FlushAsync(cancellationToken);
            }

            // Close even when there is nothing to send, so the program never waits for input.
            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // It stopped reading (nft exits on the first syntax error); its exit code and stderr say why.
        }
    }
}
