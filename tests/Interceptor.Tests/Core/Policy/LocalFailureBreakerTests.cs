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

    /// <summary>Admits a message of alice's and ends it as given; fails the test when it is refused.</summary>
    private static bool Send(LocalFailureBreaker breaker, LocalFailureVerdict verdict, uint uid = Alice)
    {
        Assert.That(breaker.Admit(uid, "alice", out var trial), Is.Null, "admitted");
        breaker.Finished(uid, trial, verdict);
        return trial;
    }

    /// <summary>A breaker that three failures of alice's just opened.</summary>
    private LocalFailureBreaker Opened()
    {
        var breaker = Breaker();
        for (var i = 0; i < 3; i++)
        {
            Send(breaker, LocalFailureVerdict.Failed);
        }

        return breaker;
    }

    [Test]
    public void At_the_limit_of_failures_of_ours_mail_gets_a_451_naming_them_and_the_user_and_other_users_go_on()
    {
        var breaker = Breaker();
        Send(breaker, LocalFailureVerdict.Failed);
        Send(breaker, LocalFailureVerdict.Failed);
        Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null, "two of three: still admitted");
        Assert.That(breaker.Finished(Alice, false, LocalFailureVerdict.Failed), Is.EqualTo(3), "the third opens it (the count is for the log line)");

        var refusal = breaker.Admit(Alice, "alice", out var trial);

        Assert.Multiple(() =>
        {
            Assert.That(refusal?.ToWire(), Is.EqualTo("451 4.3.0 3 messages of user alice failed on our side within 10 min (a local error, logged; Suspension.LocalFailureLimit); new messages are refused for 60 s more; try again later\r\n"));
            Assert.That(trial, Is.False);
            Assert.That(breaker.Admit(Bob, "bob", out _), Is.Null, "bob has no failures of his own");
        });
    }

    [Test]
    public void Failures_spread_beyond_the_window_never_open_it_and_leave_nothing_behind()
    {
        var breaker = Breaker();
        for (var i = 0; i < 10; i++)
        {
            Assert.That(Send(breaker, LocalFailureVerdict.Failed), Is.False);
            _clock.Advance(TimeSpan.FromMinutes(6));
        }

        _clock.Advance(TimeSpan.FromMinutes(11));
        Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null);
        Assert.That(breaker.Tracked, Is.Zero, "a user whose failures aged out is forgotten");
    }

    [Test]
    public void After_the_cool_down_one_message_at_a_time_is_tried_a_failed_trial_opens_it_again()
    {
        var breaker = Opened();

        _clock.Advance(TimeSpan.FromSeconds(59));
        Assert.That(breaker.Admit(Alice, "alice", out _)?.Text, Does.Contain("refused for 1 s more"));
        _clock.Advance(TimeSpan.FromSeconds(1));

        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null, "the cool-down is over: one is tried");
        Assert.That(trial, Is.True);
        Assert.That(breaker.Admit(Alice, "alice", out var second)?.Text, Does.Contain("one message is being tried, the others wait for it"));
        Assert.That(second, Is.False);

        Assert.That(breaker.Finished(Alice, trial: true, LocalFailureVerdict.Failed), Is.EqualTo(4), "the trial failed: open again");
        Assert.That(breaker.Admit(Alice, "alice", out _)?.Text, Does.Contain("refused for 60 s more"));
    }

    [Test]
    public void A_trial_that_gets_through_closes_it_and_forgets_the_failures()
    {
        var breaker = Opened();

        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(Send(breaker, LocalFailureVerdict.Worked), Is.True, "the trial");

        Assert.That(breaker.Admit(Alice, "alice", out var trial), Is.Null);
        Assert.That(breaker.Admit(Alice, "alice", out var concurrent), Is.Null, "no longer one at a time");
        Assert.That(trial || concurrent, Is.False);
        Assert.That(breaker.Tracked, Is.Zero);
        Send(breaker, LocalFailureVerdict.Failed);
        Send(breaker, LocalFailureVerdict.Failed);
        Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null, "two new failures of three: the old ones were forgotten");
    }

    [Test]
    public void A_trial_that_ends_before_our_stages_frees_its_turn_for_the_next()
    {
        var breaker = Opened();

        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(Send(breaker, LocalFailureVerdict.None), Is.True, "a trial the client left before DATA");

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null);
        Assert.That(next, Is.True, "still one at a time: nothing showed the trouble is over");
    }

    [Test]
    public void Only_a_trial_closes_it_a_message_admitted_earlier_that_got_through_does_not()
    {
        // A user making failures at will would otherwise send one real message after every two and never open it.
        var breaker = Breaker();
        for (var round = 0; round < 3; round++)
        {
            Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null);
            Assert.That(breaker.Admit(Alice, "alice", out _), Is.Null);
            breaker.Finished(Alice, false, LocalFailureVerdict.Failed);
            breaker.Finished(Alice, false, LocalFailureVerdict.Worked);
        }

        Assert.That(breaker.Admit(Alice, "alice", out _)?.Code, Is.EqualTo(451));
    }

    [Test]
    public void A_trial_whose_end_never_came_lapses_after_the_window()
    {
        var breaker = Opened();

        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out var lost), Is.Null);
        Assert.That(lost, Is.True);
        _clock.Advance(TimeSpan.FromMinutes(5));
        breaker.Finished(Alice, false, LocalFailureVerdict.Failed);
        breaker.Finished(Alice, false, LocalFailureVerdict.Failed);
        breaker.Finished(Alice, false, LocalFailureVerdict.Failed);
        _clock.Advance(TimeSpan.FromSeconds(60));
        Assert.That(breaker.Admit(Alice, "alice", out _)?.Text, Does.Contain("one message is being tried"));

        _clock.Advance(TimeSpan.FromMinutes(5));

        Assert.That(breaker.Admit(Alice, "alice", out var next), Is.Null, "ten minutes after it began, the lost trial no longer holds her back");
        Assert.That(next, Is.True);
    }

    [Test]
    public void A_limit_of_zero_turns_it_off()
    {
        var breaker = Breaker(limit: 0);
        for (var i = 0; i < 10; i++)
        {
            Send(breaker, LocalFailureVerdict.Failed);
        }

        Assert.That(breaker.Tracked, Is.Zero);
    }
}
