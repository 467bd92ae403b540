using Interceptor.Core.Threading;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Smtp.Session;

/// <summary>
/// Past the soft error limit each reply waits Smtp.ErrorDelay. That pause is a wait of the daemon's making, not the
/// session's running time: a command pipelined behind the paced reply must not count as a used slice, which would send
/// its user back to the fair-share turns (ThreadBudget) for sleeping.
/// </summary>
[TestFixture]
[CancelAfter(30_000)]
public sealed class ErrorPacingSliceTests
{
    [Test]
    public async Task Commands_pipelined_behind_paced_replies_use_no_slice()
    {
        var options = RelayHarness.Options with
        {
            Smtp = RelayHarness.Options.Smtp with { SoftErrorLimit = 1, HardErrorLimit = 100, ErrorDelay = TimeSpan.FromMilliseconds(20) },
        };

        // Three tries: a loaded machine may stall the session's thread for a slice (1 ms) between two commands, and the
        // 20 ms pause, counted as running time, would be a used slice in every one.
        var slices = new List<int>();
        for (var attempt = 0; attempt < 3; attempt++)
        {
            await using var upstream = new ScriptedUpstream(new UpstreamScript());
            var lane = new RecordingStepLane { GoOn = true, RunsQueued = true };
            StepLanes.Current = lane;
            var session = MemorySession.Start(upstream.EndPoint, options: options);
            StepLanes.Current = null;
            await using (session)
            {
                Assert.That((await session.ReadReplyAsync()).Code, Is.EqualTo(220));

                // One error, then commands already in the session's buffer: each of them is paced.
                await session.SendAsync("JUNK\r\nNOOP\r\nNOOP\r\nNOOP\r\n");
                var codes = new List<int>();
                for (var i = 0; i < 4; i++)
                {
                    codes.Add((await session.ReadReplyAsync()).Code);
                }

                Assert.That(codes, Is.EqualTo(new[] { 500, 250, 250, 250 }));
                slices.Add(lane.SlicesUsed);
            }
        }

        Assert.That(slices, Has.Some.EqualTo(0), "slices used per try: " + string.Join(", ", slices));
    }
}
