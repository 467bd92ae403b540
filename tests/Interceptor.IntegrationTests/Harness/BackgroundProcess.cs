using System.Diagnostics;

namespace Interceptor.IntegrationTests;

/// <summary>One captured output line of a background process.</summary>
public sealed record OutputLine(TimeSpan At, bool IsError, string Text);

/// <summary>
/// A long-running child (daemon, fake MX, smtp-sink) whose output is captured line by line so a
/// test can wait for a marker and a failure can show everything the process said.
/// Disposal always ends it: SIGTERM first, SIGKILL if it does not go.
/// </summary>
public sealed class BackgroundProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<OutputLine> _lines = [];
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private event Action<OutputLine>? LineReceived;

    private BackgroundProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        Command = ProcessRunner.Describe(process.StartInfo);
    }

    public string Name { get; }
    public string Command { get; }
    public int ProcessId => _process.Id;
    public bool HasExited => _exited.Task.IsCompleted;
    public int? ExitCode => HasExited ? _process.ExitCode : null;

    public static BackgroundProcess Start(string name, string fileName, IEnumerable<string> arguments, IDictionary<string, string?>? environment = null)
    {
        var startInfo = ProcessRunner.CreateStartInfo(fileName, arguments, cleanEnvironment: false);
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                startInfo.Environment.Remove(key);
            }
            else
            {
                startInfo.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var background = new BackgroundProcess(name, process);
        process.OutputDataReceived += (_, e) => background.Add(e.Data, isError: false);
        process.ErrorDataReceived += (_, e) => background.Add(e.Data, isError: true);
        process.Exited += (_, _) => background._exited.TrySetResult();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return background;
    }

    public IReadOnlyList<OutputLine> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>The whole captured output, for failure messages.</summary>
    public string Transcript()
    {
        var lines = Lines;
        var shown = lines.Count > 400 ? lines.Skip(lines.Count - 400) : lines;
        var header = $"=== {Name}: {Command} (pid {_process.Id}, {(HasExited ? $"exited {ExitCode}" : "running")}, {lines.Count} lines) ===\n";
        return header + string.Join("\n", shown.Select(l => $"[{l.At.TotalSeconds,7:F3}]{(l.IsError ? " ERR" : "")} {l.Text}"));
    }

    /// <summary>Waits for the first line matching <paramref name="predicate"/>; null if the process exits or time runs out first.</summary>
    public async Task<OutputLine?> WaitForLineAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var found = new TaskCompletionSource<OutputLine>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check(OutputLine line)
        {
            if (predicate(line.Text))
            {
                found.TrySetResult(line);
            }
        }

        LineReceived += Check;
        try
        {
            foreach (var line in Lines)
            {
                Check(line);
            }

            var winner = await Task.WhenAny(found.Task, _exited.Task, Task.Delay(timeout));
            if (winner == found.Task)
            {
                return await found.Task;
            }

            // The process may have printed the line just before exiting; the readers may still be draining.
            await Task.Delay(200);
            return found.Task.IsCompleted ? await found.Task : null;
        }
        finally
        {
            LineReceived -= Check;
        }
    }

    /// <summary>Sends a signal with kill(1): .NET can only SIGKILL, and the daemon's contract is SIGTERM.</summary>
    public async Task SignalAsync(string signal)
    {
        if (!HasExited)
        {
            await ProcessRunner.RunAsync("kill", ["-" + signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>Waits for exit; true if it exited within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        await Task.WhenAny(_exited.Task, Task.Delay(timeout));
        if (HasExited)
        {
            // Let the asynchronous readers deliver the last lines.
            _process.WaitForExit();
        }

        return HasExited;
    }

    /// <summary>Closes stdin: the fake MX treats that as "stop".</summary>
    public void CloseInput()
    {
        try
        {
            _process.StandardInput.Close();
        }
        catch (IOException)
        {
            // already gone: nothing to close
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited)
        {
            await SignalAsync("TERM");
            if (!await WaitForExitAsync(TimeSpan.FromSeconds(10)))
            {
                _process.Kill(entireProcessTree: true);
                await WaitForExitAsync(TimeSpan.FromSeconds(10));
            }
        }

        _process.Dispose();
    }

    private void Add(string? text, bool isError)
    {
        if (text is null)
        {
            return;
        }

        var line = new OutputLine(_clock.Elapsed, isError, text);
        lock (_lines)
        {
            _lines.Add(line);
        }

        LineReceived?.Invoke(line);
    }
}
