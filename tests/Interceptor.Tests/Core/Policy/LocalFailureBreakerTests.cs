using Interceptor.Core.Events;
using Interceptor.Core.Options;
using Interceptor.Core.Policy;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Core.Policy;

public class LocalFailureBreakerTests
{
    private const uint Alice = 1001;
    private const uint Bob = 1002;

    private readonly ManualClock _clock = new(new DateTimeOffset(2026, 12, 6, 12, 0, 0, TimeSpan.Zero));

    private LocalFailureBreaker Breaker(int limit = 3) => new(
        new SuspensionOptions { LocalFailureLimit = limit, LocalFailureWindow = TimeSpan.FromMinutes(10), LocalFailureCooldown = TimeSpan.FromSeconds(60) },
        _clock);

    /// <summary>Admits a message of alice's and ends it as given; fails the test when it is refused. Returns its trial number.</summary>
    private static long Send(LocalFailureBreaker breaker, OwnStages stages)
    {
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null, "admitted");
        breaker.Finished(Alice, trial, stages);
        return trial;
    }

    /// <summary>A breaker that three failures of alice's just tripped.</summary>
    private LocalFailureBreaker Tripped()
    {
        var breaker = Breaker();
        for (var i = 0; i < 3; i++)
        {
            Send(breaker, OwnStages.Failed);
        }

        return breaker;
    }

    private static string? Refusal(LocalFailureBreaker breaker) => breaker.Admit(Alice, "alice", out _)?.Text;

    [Test]
    public void At_the_limit_of_failures_of_ours_mail_gets_a_451_naming_them_and_the_user_and_other_users_go_on()
    {
        var breaker = Breaker();
        Send(breaker, OwnStages.Failed);
        Send(breaker, OwnStages.Failed);
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null, "two of three: still admitted");
        Assert.That(breaker.Finished(Alice, trial, OwnStages.Failed).Opened, Is.EqualTo((3, TimeSpan.FromSeconds(60))), "the third trips it");

        var refusal = breaker.Admit(Alice, "alice", out var refusedTrial);

        Assert.Multiple(() =>
        {
            Assert.That(refusal?.ToWire(), Is.EqualTo("451 4.3.0 messages of user alice keep failing on our side (3 within the last 10 min; a local error, logged; Suspension.LocalFailureLimit); new messages are refused for 60 s more; try again later\r\n"));
            Assert.That(trial, Is.Zero);
            Assert.That(refusedTrial, Is.Zero);
            Assert.That(breaker.Admit(Bob, "bob", out _), Is.Null, "bob has no failures of his own");
        });
    }

    [Test]
    public void Failures_spread_beyond_the_window_never_trip_it_and_leave_nothing_behind()
    {
        var breaker = Breaker();
        for (var i = 0; i < 10; i++)
        {
            Assert.That(Send(breaker, OwnStages.Failed), Is.Zero);
            _clock.Advance(TimeSpan.FromMinutes(6));
        }

        _clock.Advance(TimeSpan.FromMinutes(11));
        Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null);
        Assert.That(breaker.Tracked, Is.Zero, "a user whose failures aged out is forgotten");
    }

    [Test]
    public void After_the_cool_down_one_message_at_a_time_is_tried_and_a_failed_trial_opens_it_for_twice_as_long()
    {
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.That(Refusal(breaker), Does.Contain("refused for 1 s more"));
        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null, "the cool-down is over: one is tried");
        Assert.That(trial, Is.Not.Zero);
        Assert.That(breaker.Admit(Alice, "alice", out var second)?.Text, Does.Contain("one message is being tried, the others wait for it"));
        Assert.That(second, Is.Zero);

        Assert.That(breaker.Finished(Alice, trial, OwnStages.Failed).Opened, Is.EqualTo((4, TimeSpan.FromSeconds(120))));
        Assert.That(Refusal(breaker), Does.Contain("refused for 120 s more"));
    }

    [Test]
    public void A_trial_that_gets_through_frees_her_messages_but_the_next_failure_in_the_window_trips_it_at_once()
    {
        // Her trial is hers to choose (a small message passes a full disk in the spool's memory): were the failures
        // forgotten, each passing trial would buy a new burst of five.
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(breaker.Finished(Alice, trial, OwnStages.Passed).Freed, Is.True);

        Assert.That(breaker.Admit(Alice, "alice", out var first), Is.Null);
        Assert.That(breaker.Admit(Alice, "alice", out var concurrent), Is.Null, "no longer one at a time");
        Assert.That(first + concurrent, Is.Zero, "neither is a trial");
        Assert.That(breaker.Finished(Alice, 0, OwnStages.Failed).Opened, Is.EqualTo((4, TimeSpan.FromSeconds(120))), "one failure trips it again");
    }

    [Test]
    public void Only_the_trial_frees_her_and_one_that_ended_before_our_stages_leaves_the_next_one_a_trial()
    {
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(breaker.Finished(Alice, 0, OwnStages.Passed).Freed, Is.False, "a message admitted before it tripped frees nothing");
        Assert.That(Refusal(breaker), Does.Contain("one message is being tried"));

        breaker.Finished(Alice, trial, OwnStages.NotRun);

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null, "the trial ended before our stages (the client left): its turn is free");
        Assert.That(next, Is.Not.Zero.And.Not.EqualTo(trial), "still one at a time: nothing showed the trouble is over");
    }

    [Test]
    public void At_the_defaults_failing_trials_for_two_hours_never_get_her_a_message_without_a_trial_and_the_cool_down_stays_at_the_window()
    {
        // Second attack review: once her failures aged out of the window the breaker closed again and let a burst through.
        var breaker = new LocalFailureBreaker(new SuspensionOptions(), _clock);
        var cooldowns = new List<double>();
        var untried = 0;
        for (var minute = 0; minute < 120; minute++)
        {
            while (breaker.Admit(Alice, "alice", out var trial) is null)
            {
                untried += trial == 0 && cooldowns.Count > 0 ? 1 : 0;
                if (breaker.Finished(Alice, trial, OwnStages.Failed).Opened is { } opened)
                {
                    cooldowns.Add(opened.Cooldown.TotalSeconds);
                }
            }

            _clock.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.Multiple(() =>
        {
            Assert.That(untried, Is.Zero, "once tripped, every message she got was a trial");
            Assert.That(cooldowns.Take(6), Is.EqualTo(new[] { 60d, 120, 240, 480, 600, 600 }));
            Assert.That(cooldowns.Skip(4), Is.All.EqualTo(600d), "it stays at the window");
            Assert.That(cooldowns, Has.Count.LessThanOrEqualTo(16), "at most one failed message per cool-down after the first five");
        });
    }

    [Test]
    public void A_trip_while_a_trial_is_under_way_makes_it_no_longer_the_trial()
    {
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(breaker.Finished(Alice, 0, OwnStages.Failed).Opened, Is.Not.Null, "a message admitted before failed meanwhile: open again");

        Assert.That(breaker.Finished(Alice, trial, OwnStages.Passed).Freed, Is.False);
        _clock.Advance(TimeSpan.FromSeconds(120));
        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null);
        Assert.That(next, Is.Not.Zero, "still tripped: a trial");
    }

    [Test]
    public void A_quiet_window_after_the_cool_down_forgets_her_and_the_next_trip_starts_from_the_first_cool_down()
    {
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(60) + TimeSpan.FromMinutes(9));
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(trial, Is.Not.Zero, "not yet a whole window after the cool-down");
        breaker.Finished(Alice, trial, OwnStages.NotRun);
        _clock.Advance(TimeSpan.FromMinutes(1));

        Assert.That(breaker.Admit(Alice, "alice", out var free), Is.Null);
        Assert.That(free, Is.Zero);
        Assert.That(breaker.Tracked, Is.Zero);
        for (var i = 0; i < 2; i++)
        {
            Send(breaker, OwnStages.Failed);
        }

        Assert.That(breaker.Finished(Alice, 0, OwnStages.Failed).Opened, Is.EqualTo((3, TimeSpan.FromSeconds(60))));
    }

    [Test]
    public void A_trial_whose_end_never_came_holds_her_back_no_longer_than_a_quiet_window_and_its_late_end_frees_nothing()
    {
        var breaker = Tripped();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var lost), Is.Null);
        Assert.That(lost, Is.Not.Zero);
        _clock.Advance(TimeSpan.FromMinutes(9));
        Assert.That(Refusal(breaker), Does.Contain("one message is being tried"));
        _clock.Advance(TimeSpan.FromMinutes(1));

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null, "a whole window after the cool-down without a failure");
        Assert.That(next, Is.Zero);
        Assert.That(breaker.Finished(Alice, lost, OwnStages.Passed).Freed, Is.False);
        Assert.That(breaker.Tracked, Is.Zero);
    }

    [Test]
    public void An_admins_unblock_clears_it_and_a_limit_of_zero_turns_it_off()
    {
        var breaker = Tripped();
        breaker.Reset(Alice);
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(trial, Is.Zero);

        var off = Breaker(limit: 0);
        for (var i = 0; i < 10; i++)
        {
            Send(off, OwnStages.Failed);
        }

        Assert.That(off.Tracked, Is.Zero);
    }
}
