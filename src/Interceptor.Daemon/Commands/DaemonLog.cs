using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace Interceptor.Daemon.Commands;

/// <summary>Collects a child daemon's JSON log lines so the demo can wait for "ready" and read transactions.</summary>
internal sealed class DaemonLog
{
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<(string Message, JsonElement State)> _events = new();

    public DaemonLog(Process process)
    {
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public IEnumerable<string> Messages => _events.Select(e => e.Message);

    public IEnumerable<(string Message, JsonElement State)> Events => _events;

    public string All() => string.Join(Environment.NewLine, _lines);

    public async Task<bool> WaitForAsync(Func<string, bool> predicate, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (Messages.Any(predicate))
            {
                return true;
            }

            await Task.Delay(50);
        }

        return false;
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        try
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            var state = root.TryGetProperty("State", out var s) ? s.Clone() : default;
            _events.Enqueue((root.GetProperty("Message").GetString() ?? "", state));
        }
        catch (JsonException)
        {
            // Not a log line (e.g. a runtime error on stderr): kept in _lines for diagnostics.
        }
        catch (KeyNotFoundException)
        {
        }
    }
}
