using System.Globalization;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The daemon polls its sockets with half as many threads as processors (at least one), not .NET's one per processor
/// under inline completions: beside the scheduler's pumps that made twice as many busy threads as cores, preempting
/// each other mid-step (README → Performance). Counted in the running daemon, after it relayed a message. Its helper
/// thread, the store's writer, runs as SCHED_BATCH, so that waking it never takes the core from the socket thread that
/// woke it (Core's HelperThreads); no other thread does.
/// </summary>
[TestFixture]
[CancelAfter(60_000)]
public sealed class SocketThreadsTests
{
    [Test]
    public async Task The_daemon_polls_its_sockets_with_half_as_many_threads_as_processors()
    {
        await using var s = await Scenario.StartAsync();
        AssertDelivered(await SendAsync(s, TestUsers.Alice, "threads"), s.Describe());

        var pid = s.RequireDaemon.Process.ProcessId.ToString(CultureInfo.InvariantCulture);
        var names = Directory.EnumerateDirectories($"/proc/{pid}/task")
            .Select(task => { try { return File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n'); } catch (IOException) { return ""; } })
            .ToList();
        Assert.That(names.Count(n => n == SocketThreads.EngineThreadName), Is.EqualTo(Math.Max(1, Environment.ProcessorCount / 2)),
            "polling threads of the daemon; its threads: " + string.Join(", ", names) + s.Describe());
    }

    [Test]
    public async Task The_stores_writer_yields_on_waking_and_no_other_thread_of_the_daemon_does()
    {
        await using var s = await Scenario.StartAsync();
        AssertDelivered(await SendAsync(s, TestUsers.Alice, "policies"), s.Describe());

        var pid = s.RequireDaemon.Process.ProcessId.ToString(CultureInfo.InvariantCulture);
        var policies = new Dictionary<string, int>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n');
                policies[name] = Math.Max(policies.GetValueOrDefault(name, -1), ThreadSchedulingPolicy.Of(int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)));
            }
            catch (IOException)
            {
                // A thread that ended meanwhile.
            }
        }

        var all = string.Join(", ", policies.Select(p => $"{p.Key}={p.Value}")) + s.Describe();
        Assert.Multiple(() =>
        {
            // comm holds 15 bytes: "state-store-writer" shows as "state-store-wri".
            Assert.That(policies.GetValueOrDefault("state-store-wri", -1), Is.EqualTo(ThreadSchedulingPolicy.Batch), all);
            foreach (var other in policies.Keys.Where(name => name != "state-store-wri"))
            {
                Assert.That(policies[other], Is.EqualTo(ThreadSchedulingPolicy.Other), other + ": " + all);
            }
        });
    }
}
