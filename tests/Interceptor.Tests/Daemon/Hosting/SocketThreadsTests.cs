using Interceptor.Daemon.Hosting;

namespace Interceptor.Tests.Daemon.Hosting;

/// <summary>
/// The variables the daemon sets for .NET's socket engine before it starts (this process's engine has long read them:
/// changing them here changes nothing but what the assertions read). The daemon's real thread count is checked in the
/// integration tests (SocketThreadsTests there).
/// </summary>
[NonParallelizable]
public class SocketThreadsTests
{
    [TestCase(1, 1)]
    [TestCase(2, 1)]
    [TestCase(3, 1)]
    [TestCase(4, 2)]
    [TestCase(16, 8)]
    public void Half_the_processors_poll_at_least_one(int processors, int expected) =>
        Assert.That(SocketThreads.PollingThreads(processors), Is.EqualTo(expected));

    [Test]
    public void Unset_variables_get_inline_completions_and_half_the_processors_as_polling_threads() =>
        WithVariables(null, null, () =>
        {
            SocketThreads.PreferInlineCompletions();
            Assert.That(Environment.GetEnvironmentVariable(SocketThreads.InlineCompletionsVariable), Is.EqualTo("1"));
            Assert.That(Environment.GetEnvironmentVariable(SocketThreads.EngineCountVariable),
                Is.EqualTo(SocketThreads.PollingThreads(Environment.ProcessorCount).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        });

    [Test]
    public void An_admins_thread_count_is_kept() =>
        WithVariables(null, "3", () =>
        {
            SocketThreads.PreferInlineCompletions();
            Assert.That(Environment.GetEnvironmentVariable(SocketThreads.EngineCountVariable), Is.EqualTo("3"));
        });

    [Test]
    public void With_inline_completions_turned_off_the_thread_count_is_left_to_dotnet() =>
        WithVariables("0", null, () =>
        {
            SocketThreads.PreferInlineCompletions();
            Assert.That(Environment.GetEnvironmentVariable(SocketThreads.InlineCompletionsVariable), Is.EqualTo("0"));
            Assert.That(Environment.GetEnvironmentVariable(SocketThreads.EngineCountVariable), Is.Null,
                "the thread pool's dispatch wants .NET's own engine count");
        });

    private static void WithVariables(string? inline, string? engines, Action body)
    {
        var saved = (Environment.GetEnvironmentVariable(SocketThreads.InlineCompletionsVariable),
            Environment.GetEnvironmentVariable(SocketThreads.EngineCountVariable));
        try
        {
            Environment.SetEnvironmentVariable(SocketThreads.InlineCompletionsVariable, inline);
            Environment.SetEnvironmentVariable(SocketThreads.EngineCountVariable, engines);
            body();
        }
        finally
        {
            Environment.SetEnvironmentVariable(SocketThreads.InlineCompletionsVariable, saved.Item1);
            Environment.SetEnvironmentVariable(SocketThreads.EngineCountVariable, saved.Item2);
        }
    }
}
