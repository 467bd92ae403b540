using System.Globalization;
using Interceptor.Daemon.Hosting;
using static Interceptor.IntegrationTests.PolicyTestSupport;

namespace Interceptor.IntegrationTests;

/// <summary>
/// The daemon polls its sockets with half as many threads as processors (at least one), not .NET's one per processor
/// under inline completions: beside the scheduler's pumps that made twice as many busy threads as cores, preempting
/// each other mid-step (README → Performance). Counted in the running daemon, after it relayed a message.
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
}
