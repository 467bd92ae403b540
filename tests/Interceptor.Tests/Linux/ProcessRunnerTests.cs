using System.ComponentModel;
using System.Diagnostics;
using Interceptor.Linux;

namespace Interceptor.Tests.Linux;

public class ProcessRunnerTests
{
    [Test]
    public async Task Arguments_stdin_and_environment_reach_the_program_and_its_output_and_exit_code_come_back()
    {
        var request = new ProcessRequest("/bin/sh", ["-c", "cat; echo \"$SMTPI_TEST_VALUE\" >&2; exit 3"])
        {
            StandardInput = "from stdin; not a shell: $HOME",
            Environment = new Dictionary<string, string> { ["SMTPI_TEST_VALUE"] = "a b" },
        };

        var result = await ProcessRunner.RunAsync(request, CancellationToken.None);

        Assert.That(result, Is.EqualTo(new ProcessResult(3, "from stdin; not a shell: $HOME", "a b\n")));
    }

    [Test]
    public async Task A_program_past_its_timeout_is_killed_with_its_children()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"smtpi-runner-{Guid.NewGuid():N}");
        var request = new ProcessRequest("/bin/sh", ["-c", $"(sleep 3; touch {marker}) & echo started >&2; wait"]) { Timeout = TimeSpan.FromMilliseconds(300) };
        var clock = Stopwatch.StartNew();

        var error = Assert.ThrowsAsync<ProcessTimedOutException>(() => ProcessRunner.RunAsync(request, CancellationToken.None))!;

        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)));
        Assert.That(error.Message, Is.EqualTo("/bin/sh did not finish within 0.3 s"));
        Assert.That(error.StandardError, Is.EqualTo("started\n"));
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        Assert.That(File.Exists(marker), Is.False, "the child was killed too");
    }

    [Test]
    public void The_callers_cancellation_kills_it_and_is_not_reported_as_a_timeout()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        Assert.That(async () => await ProcessRunner.RunAsync(new ProcessRequest("/bin/sleep", ["5"]), cancel.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public void A_missing_program_cannot_be_started()
    {
        Assert.That(async () => await ProcessRunner.RunAsync(new ProcessRequest("/nonexistent/smtpi-program", []), CancellationToken.None),
            Throws.InstanceOf<Win32Exception>().With.Property(nameof(Win32Exception.NativeErrorCode)).EqualTo(2));
    }
}
