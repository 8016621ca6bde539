"""Paging for a list that grows to 100,000 rows, where an exact count would cost more than the page."""
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.utils.functional import cached_property

MAX_OFFSET = 2**63 - 1


class CappedPage(Page):
    def __init__(self, object_list, number, paginator, more):
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self):
        return self.more if self.paginator.is_capped else super().has_next()


class CappedPaginator(Paginator):
    """Counts at most `cap` rows (a COUNT over a LIMIT: bounded however long the list), says "more
    than cap" beyond that, and still pages to the end: past the cap a page knows it has a next one
    by reading one row more than it shows."""

    cap = 500

    @cached_property
    def count(self):
        # Unordered: which rows are counted does not matter, and the database may stop at the first cap + 1 it finds.
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def is_capped(self):
        return self.count > self.cap

    def validate_number(self, number):
        if not self.is_capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        if (number - 1) * self.per_page > MAX_OFFSET:  # the database's OFFSET is a bigint
            raise EmptyPage(self.error_messages["no_results"])
        return number

    def page(self, number):
        if not self.is_capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        return CappedPage(rows[: self.per_page], number, self, more=len(rows) > self.per_page)

    def get_page(self, number):
        try:
            return super().get_page(number)
        except EmptyPage:  # past the end of a list too long to count: its first page
            return self.page(1)

    def _get_page(self, *args, **kwargs):
        return CappedPage(*args, more=False, **kwargs)
