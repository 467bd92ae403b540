using System.Globalization;
using Interceptor.Daemon.Hosting;
using Interceptor.Linux;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The daemon polls its sockets with half as many threads as processors (at least one), not .NET's one per processor
/// under inline completions: beside the scheduler's pumps that made twice as many busy threads as cores, preempting
/// each other mid-step (README → Performance). Counted in the running daemon, after it relayed a message. Its helper
/// threads (the store's writer and checkpointer, the log writer) run as SCHED_BATCH, so that waking one never takes
/// the core from the socket thread that woke it (Core's HelperThreads).
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
    public async Task The_daemons_helper_threads_yield_on_waking_and_its_socket_thread_does_not()
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
            foreach (var helper in new[] { "state-store-wri", "state-store-che", "log writer" })
            {
                Assert.That(policies.GetValueOrDefault(helper, -1), Is.EqualTo(ThreadSchedulingPolicy.Batch), helper + ": " + all);
            }

            Assert.That(policies.GetValueOrDefault(SocketThreads.EngineThreadName, -1), Is.EqualTo(ThreadSchedulingPolicy.Other), all);
        });
    }
}
