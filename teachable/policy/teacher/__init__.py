"""Teachers: given a context and the student's action, a suggested action, a hint, a contrast
explanation and an error type (`TeacherAdvice`)."""

from teachable.policy.teacher.base import ERROR_TYPES, Teacher, TeacherAdvice
from teachable.policy.teacher.offline import OfflineTeacher
from teachable.policy.teacher.openai_teacher import OpenAITeacher, TeacherError

__all__ = ["ERROR_TYPES", "Teacher", "TeacherAdvice"]
__all__ += ["OfflineTeacher"]
__all__ += ["OpenAITeacher", "TeacherError"]
