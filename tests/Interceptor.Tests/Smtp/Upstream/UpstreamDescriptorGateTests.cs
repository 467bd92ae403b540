using System.Diagnostics;
using Interceptor.Smtp.Upstream;
using Interceptor.Tests.Smtp.Session;
using NUnit.Framework;

namespace Interceptor.Tests.Smtp.Upstream;

/// <summary>The cap on upstream connections: slots taken and given back, the wait, the refusal, the idle session ended.</summary>
[TestFixture]
[Parallelizable(ParallelScope.All)]
public sealed class UpstreamDescriptorGateTests
{
    [Test]
    public async Task Slots_are_taken_at_once_up_to_the_capacity_and_counted()
    {
        using var gate = new UpstreamDescriptorGate(2);
        await gate.EnterAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        await gate.EnterAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(gate.Open, Is.EqualTo(2));
            Assert.That(gate.Waits, Is.Zero, "free slots are taken without waiting");
            Assert.That(gate.HasWaiters, Is.False);
        });
        gate.Release();
        Assert.That(gate.Open, Is.EqualTo(1));
    }

    [Test]
    public async Task A_full_gate_waits_for_a_slot_given_back_meanwhile()
    {
        using var gate = new UpstreamDescriptorGate(1);
        await gate.EnterAsync(TimeSpan.FromSeconds(5), CancellationToken.None);

        var waiting = gate.EnterAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        await Wait.UntilAsync(() => gate.HasWaiters, "the second opener to wait");
        Assert.That(waiting.IsCompleted, Is.False, "no slot, so it waits");
        gate.Release();
        await Wait.ForAsync(waiting, "the waiter to get the slot given back");
        Assert.Multiple(() =>
        {
            Assert.That(gate.Open, Is.EqualTo(1));
            Assert.That(gate.Waits, Is.EqualTo(1));
            Assert.That(gate.Refusals, Is.Zero);
            Assert.That(gate.HasWaiters, Is.False);
        });
    }

    [Test]
    public async Task A_full_gate_refuses_after_the_timeout_naming_the_cap_and_LimitNOFILE()
    {
        using var gate = new UpstreamDescriptorGate(3);
        for (var i = 0; i < 3; i++)
        {
            await gate.EnterAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        }

        var clock = Stopwatch.StartNew();
        var refused = Assert.ThrowsAsync<UpstreamDescriptorsExhaustedException>(() => gate.EnterAsync(TimeSpan.FromMilliseconds(700), CancellationToken.None));
        Assert.Multiple(() =>
        {
            Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(650)), "it waited the timeout first");
            Assert.That(refused!.Message, Is.EqualTo("no descriptor free for another upstream connection (3 open, the descriptor budget's cap; LimitNOFILE)"));
            Assert.That(refused, Is.InstanceOf<UpstreamUnavailableException>(), "sessions answer it as any upstream that cannot be reached: 4xx");
            Assert.That(gate.Open, Is.EqualTo(3), "a refused opener holds no slot");
            Assert.That(gate.Refusals, Is.EqualTo(1));
            Assert.That(gate.HasWaiters, Is.False);
        });
    }

    [Test]
    public async Task A_full_gate_asks_for_an_idle_session_to_be_ended_first_and_again_while_it_waits()
    {
        using var gate = new UpstreamDescriptorGate(1);
        await gate.EnterAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        var asked = 0;
        gate.ReclaimIdle = () =>
        {
            // The first time nothing is idle; the second time "an idle session" is ended, its slot given back.
            if (Interlocked.Increment(ref asked) == 2)
            {
                gate.Release();
                return true;
            }

            return false;
        };

        await gate.EnterAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.Multiple(() =>
        {
            Assert.That(asked, Is.EqualTo(2), "asked at once, then again after a reclaim interval");
            Assert.That(gate.Open, Is.EqualTo(1));
            Assert.That(gate.Refusals, Is.Zero);
        });
    }

    [Test]
    public async Task A_free_slot_never_asks_for_an_idle_session()
    {
        using var gate = new UpstreamDescriptorGate(1) { ReclaimIdle = () => throw new AssertionException("asked with a slot free") };
        await gate.EnterAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.That(gate.Open, Is.EqualTo(1));
    }

    [Test]
    public void A_cancelled_wait_throws_and_holds_no_slot()
    {
        using var gate = new UpstreamDescriptorGate(1);
        Assert.That(gate.EnterAsync(TimeSpan.FromSeconds(1), CancellationToken.None).IsCompletedSuccessfully, Is.True);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.CatchAsync<OperationCanceledException>(() => gate.EnterAsync(TimeSpan.FromSeconds(30), cancel.Token));
        Assert.Multiple(() =>
        {
            Assert.That(gate.Open, Is.EqualTo(1));
            Assert.That(gate.HasWaiters, Is.False);
        });
    }
}
