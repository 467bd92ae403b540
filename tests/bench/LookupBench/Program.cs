using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Interceptor.Linux;

namespace LookupBench;

/// <summary>
/// Times the daemon's owner lookup (<see cref="SocketOwnerLookup.Find"/>, the netlink sock_diag query
/// by exact 4-tuple) while the network namespace holds a growing number of unrelated established TCP
/// connections, next to one read of /proc/net/tcp in the same state (what the fallback, netstat and
/// lsof have to do). Run it as root inside a throwaway network namespace: it opens the connections
/// itself.
/// </summary>
/// <remarks>
/// Usage: LookupBench [--states 0,1000,10000] [--iterations 20000] [--warmup 2000] [--targets 64] [--proc-reads 15]
/// Prints one JSON object per state (ascending; connections accumulate from one state to the next).
///
/// The unrelated connections are made to a listener that never accepts: a connection in the accept
/// queue is fully established on both ends and sits in the kernel's established hash like any other,
/// but costs this process one descriptor instead of two (the hard descriptor limit here is 20,000).
/// The lookup targets are real client sockets queried exactly as the daemon queries a redirected
/// client: local end = the client's address and port, remote end = where it connected to.
/// </remarks>
public static class Program
{
    private static readonly IPEndPoint UnrelatedListener = new(IPAddress.Parse("127.0.0.9"), 7000);
    private static readonly IPEndPoint TargetListener = new(IPAddress.Parse("127.0.0.8"), 25);

    public static async Task<int> Main(string[] args)
    {
        var states = Option(args, "--states", "0,1000,10000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).Order().ToArray();
        var iterations = int.Parse(Option(args, "--iterations", "20000"), CultureInfo.InvariantCulture);
        var warmup = int.Parse(Option(args, "--warmup", "2000"), CultureInfo.InvariantCulture);
        var targetCount = int.Parse(Option(args, "--targets", "64"), CultureInfo.InvariantCulture);
        var procReads = int.Parse(Option(args, "--proc-reads", "15"), CultureInfo.InvariantCulture);

        using var lookup = new SocketOwnerLookup();
        if (lookup.Method != OwnerLookupMethod.SockDiag)
        {
            await Console.Error.WriteLineAsync($"LookupBench: owner lookup fell back to {lookup.Method}; sock_diag is not usable here");
            return 1;
        }

        using var unrelatedListener = Listen(UnrelatedListener, backlog: 65535);
        using var targetListener = Listen(TargetListener, backlog: 1024);
        var unrelated = new List<Socket>();
        var targets = new List<(Socket Client, Socket Server)>();
        try
        {
            for (var i = 0; i < targetCount; i++)
            {
                var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await client.ConnectAsync(TargetListener);
                targets.Add((client, await targetListener.AcceptAsync()));
            }

            var endpoints = targets.Select(t => ((IPEndPoint)t.Client.LocalEndPoint!, (IPEndPoint)t.Client.RemoteEndPoint!)).ToArray();
            var uid = UserDatabase.EffectiveUid;
            foreach (var state in states)
            {
                await OpenUnrelatedAsync(unrelated, state);
                var (median, p99, max) = TimeLookups(lookup, endpoints, uid, warmup, iterations);
                var (readMedian, lines) = TimeProcReads(procReads);
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["unrelated_connections"] = state,
                    ["proc_net_tcp_rows"] = lines,
                    ["lookups"] = iterations,
                    ["lookup_median_us"] = Math.Round(median, 2),
                    ["lookup_p99_us"] = Math.Round(p99, 2),
                    ["lookup_max_us"] = Math.Round(max, 2),
                    ["proc_read_median_ms"] = Math.Round(readMedian, 3),
                    ["proc_reads"] = procReads,
                }));
            }

            return 0;
        }
        finally
        {
            foreach (var socket in unrelated)
            {
                socket.Dispose();
            }

            foreach (var (client, server) in targets)
            {
                client.Dispose();
                server.Dispose();
            }
        }
    }

    private static Socket Listen(IPEndPoint endPoint, int backlog)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(endPoint);
        socket.Listen(backlog);
        return socket;
    }

    /// <summary>Connects until <paramref name="target"/> unrelated connections are open, 256 at a time.</summary>
    private static async Task OpenUnrelatedAsync(List<Socket> open, int target)
    {
        while (open.Count < target)
        {
            var batch = Enumerable.Range(0, Math.Min(256, target - open.Count))
                .Select(_ => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
                .ToArray();
            open.AddRange(batch);
            await Task.WhenAll(batch.Select(s => s.ConnectAsync(UnrelatedListener)));
        }
    }

    /// <summary>Median, p99 and max of single Find calls in microseconds, cycling over the targets.</summary>
    private static (double Median, double P99, double Max) TimeLookups(
        SocketOwnerLookup lookup, (IPEndPoint Client, IPEndPoint Destination)[] endpoints, uint uid, int warmup, int iterations)
    {
        for (var i = 0; i < warmup; i++)
        {
            Check(lookup.Find(endpoints[i % endpoints.Length].Client, endpoints[i % endpoints.Length].Destination), uid);
        }

        var ticks = new long[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var (client, destination) = endpoints[i % endpoints.Length];
            var start = Stopwatch.GetTimestamp();
            var owner = lookup.Find(client, destination);
            ticks[i] = Stopwatch.GetTimestamp() - start;
            Check(owner, uid);
        }

        Array.Sort(ticks);
        var toMicroseconds = 1_000_000.0 / Stopwatch.Frequency;
        return (Rank(ticks, 50) * toMicroseconds, Rank(ticks, 99) * toMicroseconds, ticks[^1] * toMicroseconds);
    }

    private static void Check(SocketOwner? owner, uint uid)
    {
        if (owner is not { } found || found.Uid != uid || found.Inode == 0)
        {
            throw new InvalidOperationException($"lookup returned {owner?.ToString() ?? "nothing"}; expected uid {uid} with an inode");
        }
    }

    /// <summary>Median time of one complete read of /proc/net/tcp, and its row count.</summary>
    private static (double MedianMs, int Rows) TimeProcReads(int reads)
    {
        var times = new long[Math.Max(1, reads)];
        var rows = 0;
        for (var i = 0; i < times.Length; i++)
        {
            var start = Stopwatch.GetTimestamp();
            var text = File.ReadAllText("/proc/net/tcp");
            times[i] = Stopwatch.GetTimestamp() - start;
            rows = text.AsSpan().Count('\n') - 1; // minus the header line
        }

        Array.Sort(times);
        return (Rank(times, 50) * 1000.0 / Stopwatch.Frequency, rows);
    }

    /// <summary>Nearest-rank percentile of a sorted array.</summary>
    private static long Rank(long[] sorted, int percentile) =>
        sorted[Math.Max(0, (int)Math.Ceiling(sorted.Length * percentile / 100.0) - 1)];

    private static string Option(string[] args, string name, string fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : fallback;
    }
}
