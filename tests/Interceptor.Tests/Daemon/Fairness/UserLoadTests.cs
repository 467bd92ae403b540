using Interceptor.Daemon.Fairness;
using Interceptor.Tests.TestDoubles;

namespace Interceptor.Tests.Daemon.Fairness;

/// <summary>The flood mark of <see cref="UserLoad"/>, on a clock the test moves: earned, kept while the flood lasts, lost after.</summary>
[TestFixture]
public class UserLoadTests
{
    private const uint Flooder = 1000;
    private const uint Neighbour = 1001;
    private static readonly TimeSpan Window = FairShareScheduler.LoadWindow;

    private SteppedClock _clock = null!;
    private UserLoad _load = null!;

    [SetUp]
    public void Create()
    {
        _clock = new SteppedClock();
        _load = new UserLoad(_clock, Window, FairShareScheduler.OthersServedFor, FairShareScheduler.LightStepsPerWindow,
            FairShareScheduler.FloodSessions, FairShareScheduler.FloodSessionsAnyway, FairShareScheduler.SlicesToStayInTurns, FairShareScheduler.PaceWindow);
    }

    [Test]
    public void Sessions_that_stay_in_the_scheduler_past_the_window_are_still_a_flood()
    {
        EnterSessions(Flooder, FairShareScheduler.FloodSessionsAnyway);
        _load.Enter(Neighbour);
        Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.True, "flooding as its sessions entered");

        // None of them leaves or enters again (each keeps yielding), for 1.5 s (beyond OthersServedFor, 1 s), while the
        // neighbour's work comes and goes: its own entries alone now show that others are being served.
        for (var i = 0; i < 10; i++)
        {
            _clock.Advance(Window * 1.5);
            _load.Leave(Neighbour);
            _load.Enter(Neighbour);
            Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.True, $"still flooding {(i + 1) * 1.5} windows on");
        }
    }

    [Test]
    public void A_flood_stays_marked_while_a_neighbours_session_waits_in_the_scheduler_and_neither_enters_again()
    {
        // The neighbour's one long step (a big message's stages, a handshake) keeps yielding too: nobody enters for 1.5 s.
        EnterSessions(Flooder, FairShareScheduler.FloodSessionsAnyway);
        _load.Enter(Neighbour);
        for (var i = 0; i < 10; i++)
        {
            _clock.Advance(Window * 1.5);
            Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.True, $"still flooding among others {(i + 1) * 1.5} windows on");
        }

        _load.Leave(Neighbour);
        _clock.Advance(FairShareScheduler.OthersServedFor + Window);
        Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.False, "alone once the neighbour's work is done");
    }

    [Test]
    public void The_mark_lapses_a_window_after_the_flood_left()
    {
        EnterSessions(Flooder, FairShareScheduler.FloodSessionsAnyway);
        for (var i = 0; i < FairShareScheduler.FloodSessionsAnyway; i++)
        {
            _load.Leave(Flooder);
        }

        _clock.Advance(Window * 1.5);
        _load.Enter(Neighbour);

        Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.False);
    }

    [Test]
    public void A_few_sessions_staying_behind_a_bigger_flood_are_not_marked_when_the_window_ends()
    {
        EnterSessions(Neighbour, FairShareScheduler.FloodSessionsAnyway);
        EnterSessions(Flooder, FairShareScheduler.FloodSessions);
        _clock.Advance(Window * 1.5);

        Assert.Multiple(() =>
        {
            Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.False, "four sessions while another user has more waiting");
            Assert.That(_load.IsFloodingAmongOthers(Neighbour), Is.True);
        });
    }

    [Test]
    public void A_user_alone_is_never_flooding_however_long_its_sessions_stay()
    {
        EnterSessions(Flooder, FairShareScheduler.FloodSessionsAnyway);
        for (var i = 0; i < 10; i++)
        {
            _clock.Advance(Window * 1.5);
            Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.False, "nobody else to be fair to");
        }
    }

    [Test]
    public void A_flood_is_no_longer_among_others_a_second_after_the_neighbour_left()
    {
        EnterSessions(Flooder, FairShareScheduler.FloodSessionsAnyway);
        _load.Enter(Neighbour);
        _load.Leave(Neighbour);

        _clock.Advance(FairShareScheduler.OthersServedFor + Window);
        Assert.That(_load.IsFloodingAmongOthers(Flooder), Is.False);
    }

    private void EnterSessions(uint uid, int count)
    {
        for (var i = 0; i < count; i++)
        {
            _load.Enter(uid);
        }
    }
}
