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

    private LocalFailureBreaker Breaker(int limit = 3, TimeSpan? window = null) => new(
        new SuspensionOptions { LocalFailureLimit = limit, LocalFailureWindow = window ?? TimeSpan.FromMinutes(10), LocalFailureCooldown = TimeSpan.FromSeconds(60) },
        _clock);

    /// <summary>Admits a message of alice's and ends it as given; fails the test when it is refused. Returns its trial number.</summary>
    private static long Send(LocalFailureBreaker breaker, OwnStages stages, uint uid = Alice)
    {
        Assert.That(breaker.Admit(uid, "alice", out var trial), Is.Null, "admitted");
        breaker.Finished(uid, trial, stages);
        return trial;
    }

    /// <summary>A breaker that three failures of alice's just opened.</summary>
    private LocalFailureBreaker Opened()
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
        Assert.That(breaker.Finished(Alice, trial, OwnStages.Failed), Is.EqualTo(3), "the third opens it (the count is for the log line)");

        var refusal = breaker.Admit(Alice, "alice", out var refusedTrial);

        Assert.Multiple(() =>
        {
            Assert.That(refusal?.ToWire(), Is.EqualTo("451 4.3.0 3 messages of user alice failed on our side within 10 min (a local error, logged; Suspension.LocalFailureLimit); new messages are refused for 60 s more; try again later\r\n"));
            Assert.That(trial, Is.Zero);
            Assert.That(refusedTrial, Is.Zero);
            Assert.That(breaker.Admit(Bob, "bob", out _), Is.Null, "bob has no failures of his own");
        });
    }

    [Test]
    public void Failures_spread_beyond_the_window_never_open_it_and_leave_nothing_behind()
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
        var breaker = Opened();
        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.That(Refusal(breaker), Does.Contain("refused for 1 s more"));
        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null, "the cool-down is over: one is tried");
        Assert.That(trial, Is.Not.Zero);
        Assert.That(breaker.Admit(Alice, "alice", out var second)?.Text, Does.Contain("one message is being tried, the others wait for it"));
        Assert.That(second, Is.Zero);

        Assert.That(breaker.Finished(Alice, trial, OwnStages.Failed), Is.EqualTo(4), "the trial failed: open again");
        Assert.That(Refusal(breaker), Does.Contain("refused for 120 s more"));
    }

    [Test]
    public void A_trial_that_gets_through_frees_her_messages_but_the_next_failure_in_the_window_opens_it_at_once()
    {
        // Her trial is hers to choose (a small message passes a full disk in the spool's memory): were the failures
        // forgotten, each passing trial would buy a new burst of five.
        var breaker = Opened();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(Send(breaker, OwnStages.Passed), Is.Not.Zero, "the trial");

        Assert.That(breaker.Admit(Alice, "alice", out var first), Is.Null);
        Assert.That(breaker.Admit(Alice, "alice", out var concurrent), Is.Null, "no longer one at a time");
        Assert.That(first + concurrent, Is.Zero, "neither is a trial");
        Assert.That(breaker.Finished(Alice, 0, OwnStages.Failed), Is.EqualTo(4), "one failure opens it again");
        Assert.That(Refusal(breaker), Does.Contain("refused for 120 s more"));
    }

    [Test]
    public void Only_the_trial_frees_her_a_message_that_ended_otherwise_leaves_the_next_one_a_trial()
    {
        var breaker = Opened();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        breaker.Finished(Alice, 0, OwnStages.Passed);
        Assert.That(Refusal(breaker), Does.Contain("one message is being tried"), "a message admitted before it opened frees nothing");

        breaker.Finished(Alice, trial, OwnStages.NotRun);

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null, "the trial ended before our stages (the client left): its turn is free");
        Assert.That(next, Is.Not.Zero.And.Not.EqualTo(trial), "still one at a time: nothing showed the trouble is over");
    }

    [Test]
    public void Cool_downs_double_while_failures_stay_in_the_window_up_to_the_window_and_start_over_after_a_quiet_window()
    {
        var breaker = Breaker(window: TimeSpan.FromMinutes(60));
        for (var i = 0; i < 3; i++)
        {
            Send(breaker, OwnStages.Failed);
        }

        var cooldowns = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            long trial;
            while (breaker.Admit(Alice, "alice", out trial) is not null)
            {
                _clock.Advance(TimeSpan.FromMinutes(1));
            }

            Assert.That(trial, Is.Not.Zero, "half open: a trial");
            breaker.Finished(Alice, trial, OwnStages.Failed);
            var text = Refusal(breaker)!;
            var from = text.IndexOf("refused for ", StringComparison.Ordinal) + 12;
            cooldowns.Add(text[from..text.IndexOf(" s more", StringComparison.Ordinal)]);
        }

        Assert.That(cooldowns, Is.EqualTo(new[] { "120", "240", "480", "960", "1920", "3600" }));
        _clock.Advance(TimeSpan.FromHours(2));
        Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null);
        for (var i = 0; i < 3; i++)
        {
            Send(breaker, OwnStages.Failed);
        }

        Assert.That(Refusal(breaker), Does.Contain("refused for 60 s more"), "after a quiet window it starts from the first cool-down");
    }

    [Test]
    public void A_trial_whose_end_never_came_lapses_after_the_window_and_its_late_end_frees_nothing()
    {
        var breaker = Opened();
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var lost), Is.Null);
        _clock.Advance(TimeSpan.FromMinutes(5));
        for (var i = 0; i < 3; i++)
        {
            breaker.Finished(Alice, 0, OwnStages.Failed);
        }

        _clock.Advance(TimeSpan.FromSeconds(120));
        Assert.That(Refusal(breaker), Does.Contain("one message is being tried"));
        _clock.Advance(TimeSpan.FromMinutes(4));

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null, "ten minutes after it began, the lost trial no longer holds her back");
        Assert.That(next, Is.Not.Zero.And.Not.EqualTo(lost));
        breaker.Finished(Alice, lost, OwnStages.Passed);
        Assert.That(Refusal(breaker), Does.Contain("one message is being tried"), "the lapsed trial's late end is not the current trial's");
    }

    [Test]
    public void A_limit_of_zero_turns_it_off()
    {
        var breaker = Breaker(limit: 0);
        for (var i = 0; i < 10; i++)
        {
            Send(breaker, OwnStages.Failed);
        }

        Assert.That(breaker.Tracked, Is.Zero);
    }
}
