"""The HTML side: pages for residents, representatives and the office, in Chinese, calling the same
services as the API. Every action is a real link or form (redirect after POST); htmx only makes it
smoother. See frontend/templates and STYLE.md."""
